"""ZeroPadding2D / Cropping2D (the Window kind) and UpSampling2D on the device, with the maths of
``kinds.reshaping`` (its docstring). One thread per output value forward and per input value
backward: an input's gradient is gathered from the outputs that copy it, in the CPU's order.

Flatten and Reshape are no ops at all: a slot holds a sample's values in row-major order
whatever its shape.
"""
import numpy as np
from numba import cuda

from ..kinds import reshaping as K
from ..kinds.parallel import HEADER
from ..program import A_POS, FLAGS, IAUX, NEED_DX, X_POS
from .kinds import register
from .launch import planned
from .maps import pixel

_ZERO = np.float32(0.0)


@cuda.jit(cache=True)
def window_forward(H, W, C, OH, OW, DH, DW, ws, x, a, b):
    """Output pixel (oh, ow) is input pixel (oh + DH, ow + DW), zeros outside the input."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * OH * OW * C, stride):
        s, oh, ow, c = pixel(e, OH, OW, C)
        ih, iw = oh + DH, ow + DW
        v = _ZERO
        if ih >= 0 and ih < H and iw >= 0 and iw < W:
            v = ws[x + ((s * H + ih) * W + iw) * C + c]
        ws[a + e] = v


@cuda.jit(cache=True)
def window_backward(H, W, C, OH, OW, DH, DW, gs, x, a, b):
    """An input pixel's gradient is its output pixel's, or zero where no output reads it."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * H * W * C, stride):
        s, ih, iw, c = pixel(e, H, W, C)
        oh, ow = ih - DH, iw - DW
        d = _ZERO
        if oh >= 0 and oh < OH and ow >= 0 and ow < OW:
            d += gs[a + ((s * OH + oh) * OW + ow) * C + c]
        gs[x + e] = d


@cuda.jit(cache=True)
def upsample_forward(H, W, C, SH, SW, ws, x, a, b):
    """Output pixel (oh, ow) is input pixel (oh // SH, ow // SW)."""
    OH, OW = H * SH, W * SW
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * OH * OW * C, stride):
        s, oh, ow, c = pixel(e, OH, OW, C)
        ws[a + e] = ws[x + ((s * H + oh // SH) * W + ow // SW) * C + c]


@cuda.jit(cache=True)
def upsample_backward(H, W, C, SH, SW, gs, x, a, b):
    """An input pixel's gradient is the sum over its ``SH x SW`` copies, row by row."""
    OH, OW = H * SH, W * SW
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * H * W * C, stride):
        s, ih, iw, c = pixel(e, H, W, C)
        d = _ZERO
        for oh in range(ih * SH, ih * SH + SH):
            for ow in range(iw * SW, iw * SW + SW):
                d += gs[a + ((s * OH + oh) * OW + ow) * C + c]
        gs[x + e] = d


def _geometry(session, i, b):
    """(the kind's 7 integer constants, x, a, input values per sample)."""
    rec = session.prog[i]
    geo = tuple(int(v) for v in session.ints_host[int(rec[IAUX]) + HEADER:][:7])
    return geo, b * int(rec[X_POS]), b * int(rec[A_POS]), geo[0] * geo[1] * geo[2]


def _needs_dx(session, i):
    return bool(int(session.prog[i][FLAGS]) & NEED_DX)


def window_forward_plan(session, i, b, training):
    geo, x, a, _ = _geometry(session, i, b)
    H, W, C, OH, OW = geo[:5]
    return [planned(window_forward, b * OH * OW * C, *geo, session.ws, x, a, b)]


def window_backward_plan(session, i, b, training):
    geo, x, a, n_in = _geometry(session, i, b)
    return [planned(window_backward, b * n_in, *geo, session.gs, x, a, b)] if _needs_dx(session, i) else []


def upsample_forward_plan(session, i, b, training):
    (H, W, C, SH, SW, _, _), x, a, n_in = _geometry(session, i, b)
    return [planned(upsample_forward, b * n_in * SH * SW, H, W, C, SH, SW, session.ws, x, a, b)]


def upsample_backward_plan(session, i, b, training):
    (H, W, C, SH, SW, _, _), x, a, n_in = _geometry(session, i, b)
    if not _needs_dx(session, i):
        return []
    return [planned(upsample_backward, b * n_in, H, W, C, SH, SW, session.gs, x, a, b)]


register(K.WINDOW, window_forward_plan, window_backward_plan)
register(K.UPSAMPLE, upsample_forward_plan, upsample_backward_plan)
