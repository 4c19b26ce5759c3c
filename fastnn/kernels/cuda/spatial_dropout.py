"""SpatialDropout1D/2D on the device (``kinds.spatial_dropout``): in training, each channel of a
sample is kept, scaled by ``1 / (1 - rate)``, or zeroed at every pixel; the ``C`` mask values of
a sample are kept in the op's scratch for the backward pass. Inference copies.

The masks come from the session's xoroshiro128+ states, as Dropout's do on the device: a seed
gives the same masks run after run, but not the CPU's masks (its generator is another).
"""
import numpy as np
from numba import cuda
from numba.cuda.random import xoroshiro128p_uniform_float32

from ..kinds.spatial_dropout import SPATIAL_DROPOUT
from ..program import A_POS, AUX, FLAGS, IAUX, N_OUT, NEED_DX, X_POS, Z_POS
from . import elementwise as ew
from .kinds import register
from .launch import THREADS, blocks_for, configure, planned

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@cuda.jit(cache=True)
def spatial_dropout(states, rate, b, pixels, C, ws, x, m, a):
    """Masks of the ``b * C`` (sample, channel) pairs into ws[m:], and a = x * mask at every pixel.
    Thread t draws from xoroshiro state ``t``: launch at most ``len(states)`` threads in all."""
    t = cuda.grid(1)
    stride = cuda.gridsize(1)
    if t >= states.shape[0]:
        return
    keep_scale = _ONE / (_ONE - rate)
    for e in range(t, b * C, stride):
        mk = keep_scale if xoroshiro128p_uniform_float32(states, t) >= rate else _ZERO
        ws[m + e] = mk
        first = (e // C) * pixels * C + e % C
        for p in range(pixels):
            ws[a + first + p * C] = ws[x + first + p * C] * mk


@cuda.jit(cache=True)
def spatial_dropout_backward(n, C, ws, gs, x, m, a, b):
    """gs[x] = gs[a] * the mask of the value's (sample, channel)."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * n, stride):
        gs[x + e] = gs[a + e] * ws[m + (e // n) * C + e % C]


def _op(session, i, b):
    rec = session.prog[i]
    n, C = int(rec[N_OUT]), int(session.ints_host[int(rec[IAUX])])
    return n, C, b * int(rec[X_POS]), b * int(rec[Z_POS]), b * int(rec[A_POS])


def forward(session, i, b, training):
    n, C, x, m, a = _op(session, i, b)
    if not training:
        return [planned(ew.copy, b * n, session.ws, x, session.ws, a, b * n)]
    rate = np.float32(session.consts_host[int(session.prog[i][AUX])])
    blocks = min(blocks_for(b * C), session.states.shape[0] // THREADS)
    return [(configure(spatial_dropout, blocks, THREADS), (session.states, rate, b, n // C, C, session.ws, x, m, a))]


def backward(session, i, b, training):
    if not int(session.prog[i][FLAGS]) & NEED_DX:
        return []
    n, C, x, m, a = _op(session, i, b)
    if not training:
        return [planned(ew.copy, b * n, session.gs, a, session.gs, x, b * n)]
    return [planned(spatial_dropout_backward, b * n, n, C, session.ws, session.gs, x, m, a, b)]


register(SPATIAL_DROPOUT, forward, backward, random=True)
