"""Conv1D / Conv2D on the device (the Conv kind of ``kinds.conv``): im2col, the GEMM, col2im.

Layout and maths are the CPU kind's (its docstring): a sample is an ``H x W x C`` map, the
kernel a ``K x F`` matrix with ``K = KH * KW * C`` in (kh, kw, c) order, the output ``OH x OW
x F``, the geometry in the op's integer constants (``kinds.conv.G_*``). Each op has a device
buffer of ``b * P * K`` floats (``P = OH * OW``) for col(X), the ``K`` inputs under the kernel
at each output pixel (zeros in the padding):

- forward: im2col, then ``Z = col @ W + bias`` with the activation in the GEMM's epilogue
  (softmax, over the channels of each pixel, gets its own launch). A 1x1 stride-1 convolution
  without padding reads X as col(X) and needs no im2col.
- backward: ``dZ = dA * act'(z)`` (none when linear); ``[dW; db] = [col^T; 1] @ dZ`` (the ones
  row when the bias follows the kernel in the buffer, else a column-sums launch); then, when
  the input needs its gradient, ``dcol = dZ @ W^T`` into the same buffer (col is dead by then)
  and col2im, which gathers each input's gradient from the dcol entries that read it: no
  atomics, and the sum in the CPU's order.

The product and activation steps (``product_forward``, ``activation_backward``, ``product_backward``)
serve SeparableConv2D's pointwise product too (``depthwise.py``), as does ``window``.
"""
import numpy as np
from numba import cuda

from ..cpu.activations import LINEAR, SOFTMAX
from ..kinds import conv as K
from ..kinds.parallel import HEADER
from ..program import A_POS, ACT, B_OFF, DENSE, FLAGS, FROZEN, IAUX, NEED_DX, W_OFF, X_POS, Z_POS
from . import blas, elementwise as ew
from .kinds import register
from .launch import planned
from .maps import pixel, reader

_ZERO = np.float32(0.0)


@cuda.jit(device=True)
def window(ints, g):
    """(H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL) of the op whose geometry is at ints[g:]."""
    return (ints[g + K.G_H], ints[g + K.G_W], ints[g + K.G_C], ints[g + K.G_OH], ints[g + K.G_OW], ints[g + K.G_KH],
            ints[g + K.G_KW], ints[g + K.G_SH], ints[g + K.G_SW], ints[g + K.G_DH], ints[g + K.G_DW],
            ints[g + K.G_PT], ints[g + K.G_PL])


@cuda.jit(cache=True)
def im2col(ints, g, ws, x, b, cols, c0):
    """cols[c0:] (``b * P`` rows of ``K``) = col(X) of the ``b`` samples at ws[x:]; geometry at ints[g:]."""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = window(ints, g)
    k_size, n_pix = KH * KW * C, OH * OW
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * n_pix * k_size, stride):
        k = e % k_size
        r = e // k_size
        p = r % n_pix
        s = r // n_pix
        q = k // C
        ih = (p // OW) * SH + (q // KW) * DH - PT
        iw = (p % OW) * SW + (q % KW) * DW - PL
        v = _ZERO
        if ih >= 0 and ih < H and iw >= 0 and iw < W:
            v = ws[x + ((s * H + ih) * W + iw) * C + k - q * C]
        cols[c0 + e] = v


@cuda.jit(cache=True)
def col2im(ints, g, cols, c0, gs, x, b):
    """gs[x:] (``b`` maps) = col2im(dcol at cols[c0:]): each input's gradient is the sum of the
    dcol entries that read it, added tap by tap, (kh, kw) ascending (the CPU's order)."""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = window(ints, g)
    k_size = KH * KW * C
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * H * W * C, stride):
        s, ih, iw, c = pixel(e, H, W, C)
        v = _ZERO
        for kh in range(KH):
            oh = reader(ih, kh, PT, DH, SH, OH)
            if oh < 0:
                continue
            for kw in range(KW):
                ow = reader(iw, kw, PL, DW, SW, OW)
                if ow >= 0:
                    v += cols[c0 + ((s * OH + oh) * OW + ow) * k_size + (kh * KW + kw) * C + c]
        gs[x + e] = v


class _Op:
    """What the launches of Conv op ``i`` need, read from the op table once."""

    def __init__(self, session, i, b):
        rec = session.prog[i]
        self.g = int(rec[IAUX]) + HEADER
        geo = [int(v) for v in session.ints_host[self.g:self.g + K.N_GEOMETRY]]
        H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, F = geo[:14]
        self.P, self.K, self.F, self.in_size = OH * OW, KH * KW * C, F, H * W * C
        self.act, self.flags = int(rec[ACT]), int(rec[FLAGS])
        self.w, self.bias = int(rec[W_OFF]), int(rec[B_OFF])
        self.x, self.a = b * int(rec[X_POS]), b * int(rec[A_POS])
        # z: in place in the output (linear, ReLU, softmax), else the op's scratch (kinds.conv._z_at)
        self.z = self.a if geo[K.G_ZIN] else b * int(rec[Z_POS]) + geo[K.G_ZOFF]
        self.direct = KH == KW == SH == SW == 1 and PT == PL == 0
        # col(X): the op's device scratch, or X itself for a 1x1 convolution
        self.cols, self.c0 = (session.ws, self.x) if self.direct else (session.scratch, int(session.scratch_at[i]))


def product_forward(session, rows, k, n, cols, c0, w, bias, act, z, a):
    """Launches of ``z = cols @ W + bias`` and ``a = act(z)``: ``cols`` a ``rows x k`` matrix at ``cols[c0:]``,
    W ``k x n`` at ``params[w:]``, the bias at ``params[bias:]`` (< 0: none), z and a in ``ws``. The activation
    rides in the GEMM's epilogue; softmax, over each row, gets a launch of its own. (Conv's product, and the
    pointwise product of SeparableConv2D.)"""
    ws = session.ws
    fused = act not in (LINEAR, SOFTMAX)
    launches = [blas.gemm_launch(False, False, rows, n, k, 1.0, 0.0, cols, c0, k, session.params, w, n, ws, z, n,
                                 bias=session.params, bias_off=bias, epi=blas.EPI_ACT if fused else blas.EPI_NONE,
                                 act=act, out=ws, out_off=a)]
    if act == SOFTMAX:
        launches.append(planned(ew.softmax_rows, rows, ws, z, ws, a, rows, n))
    return launches


def activation_backward(session, act, rows, width, z, a):
    """Launches of ``dZ = dA * act'(z)`` (gs at ``z`` from gs at ``a``) over ``rows`` pixels of ``width``
    channels, softmax over each pixel's channels; none when linear (z is a). Shared by the convolution kinds."""
    ws, gs = session.ws, session.gs
    if act == SOFTMAX:
        return [planned(ew.softmax_rows_backward, rows, ws, gs, a, gs, z, rows, width)]
    if act != LINEAR:
        return [planned(ew.op_backward, rows * width, DENSE, act, width, rows, 0, z, a, ws, gs, session.params, -1,
                        session.consts, 0)]
    return []


def product_backward(session, rows, k, n, cols, c0, w, bias, z, frozen, dcols=None, d0=0):
    """Launches of the gradients of ``product_forward``'s product from dZ (gs at ``z``): unless ``frozen``,
    ``[dW; db] = [cols^T; 1] @ dZ`` (the ones row when the bias follows W in the buffer, else a column-sums
    launch); with ``dcols``, ``dcols[d0:] = dZ @ W^T`` (``rows x k``)."""
    gs = session.gs
    launches = []
    if not frozen:
        ones_row = bias == w + k * n
        launches.append(blas.gemm_launch(True, False, k + ones_row, n, rows, 1.0, 0.0, cols, c0, k, gs, z, n,
                                         session.grads, w, n, ones_row=ones_row))
        if bias >= 0 and not ones_row:
            launches.append(planned(ew.column_sums, n, gs, z, rows, n, session.grads, bias))
    if dcols is not None:
        launches.append(blas.gemm_launch(False, True, rows, k, n, 1.0, 0.0, gs, z, n, session.params, w, n, dcols, d0,
                                         k))
    return launches


def forward(session, i, b, training):
    op = _Op(session, i, b)
    rows = b * op.P
    launches = []
    if not op.direct:
        launches.append(planned(im2col, rows * op.K, session.ints, op.g, session.ws, op.x, b, op.cols, op.c0))
    return launches + product_forward(session, rows, op.K, op.F, op.cols, op.c0, op.w, op.bias, op.act, op.z, op.a)


def backward(session, i, b, training):
    op, gs = _Op(session, i, b), session.gs
    if op.flags & FROZEN and not op.flags & NEED_DX:
        return []       # a frozen first layer: no gradient wanted
    rows = b * op.P
    need_dx = bool(op.flags & NEED_DX)
    # dcol = dZ W^T (W stored K x F); a 1x1 convolution's dcol is dX itself
    dst, d0 = (gs, op.x) if op.direct else (op.cols, op.c0)
    launches = activation_backward(session, op.act, rows, op.F, op.z, op.a)
    launches += product_backward(session, rows, op.K, op.F, op.cols, op.c0, op.w, op.bias, op.z,
                                 bool(op.flags & FROZEN), dst if need_dx else None, d0)
    if need_dx and not op.direct:
        launches.append(planned(col2im, b * op.in_size, session.ints, op.g, op.cols, op.c0, gs, op.x, b))
    return launches


def scratch(rec, ints):
    """Floats per sample of col(X): ``P * K`` (none for a 1x1 convolution, which reads X itself)."""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = (int(v) for v in ints[int(rec[IAUX]) + HEADER:][:13])
    return 0 if KH == KW == SH == SW == 1 and PT == PL == 0 else OH * OW * KH * KW * C


register(K.CONV, forward, backward, scratch)
