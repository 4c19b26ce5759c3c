"""SpatialDropout2D: in training, drops whole channels of a feature map.

A sample is ``P`` pixels of ``C`` channels (N_OUT = P * C; C at IAUX);
channel c of sample s is kept with probability ``1 - rate`` and then scaled
by ``1 / (1 - rate)``, the same for every pixel (Keras's noise shape
``(batch, 1, 1, C)``). The ``C`` mask values of each sample are kept in the
op's scratch for the backward pass. Serial: the masks' key comes from the
compiled generator (``cpu.dropout_masks``), so a seed gives the same masks
whatever the number of threads.
"""
from numba import njit

from .. import program as P
from ..cpu.dropout_masks import draw_mask
from . import KERNEL, put, register


@njit(**KERNEL)
def spatial_dropout_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    x, z, a, n = b * rec[P.X_POS], b * rec[P.Z_POS], b * rec[P.A_POS], rec[P.N_OUT]
    C = ints[rec[P.IAUX]]
    if not training:
        for k in range(b * n):
            ws[a + k] = ws[x + k]
        return
    draw_mask(ws[z:z + b * C], consts[rec[P.AUX]])     # one factor per sample and channel
    for s in range(b):
        m = z + s * C
        for p in range(n // C):
            o = s * n + p * C
            for c in range(C):
                ws[a + o + c] = ws[x + o + c] * ws[m + c]


@njit(**KERNEL)
def spatial_dropout_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    x, z, a, n = b * rec[P.X_POS], b * rec[P.Z_POS], b * rec[P.A_POS], rec[P.N_OUT]
    C = ints[rec[P.IAUX]]
    acc = (rec[P.ACC] & 1) != 0
    for s in range(b):
        for p in range(n // C):
            o = s * n + p * C
            for c in range(C):
                put(gs, x + o + c, gs[a + o + c] * ws[z + s * C + c] if training else gs[a + o + c], acc)


SPATIAL_DROPOUT = register("SpatialDropout", spatial_dropout_forward, spatial_dropout_backward, shareable=True,
                           on_cuda=True)
