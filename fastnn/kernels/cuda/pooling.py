"""Pooling on the device: the Pooling kind of ``kinds.pooling`` (max / average windows, 1-D and
2-D, and global 2-D pooling, whose window is the map) and the GlobalPooling1D kind of
``kinds.global_pooling1d`` (without a mask: a masked one has two inputs, which the engine does
not run).

The maths are the CPU kinds' (their docstrings), value for value: windows clipped to the map,
an average divided by the number of values inside it, a max window's gradient to its first
largest input in row-major order. Forward: one thread per output value. Backward: one thread
per input value, which gathers what the windows covering it give back, in the CPU's order of
windows, so the sums are the CPU's bit for bit and no two threads write one value.
"""
import numpy as np
from numba import cuda

from ..kinds import global_pooling1d as G1
from ..kinds import pooling as K
from ..kinds.parallel import HEADER
from ..program import A_POS, FLAGS, IAUX, N_INS, NEED_DX, X_POS
from .kinds import register
from .launch import planned
from .maps import pixel

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@cuda.jit(device=True)
def _window(ints, g):
    return (ints[g + K.G_H], ints[g + K.G_W], ints[g + K.G_C], ints[g + K.G_OH], ints[g + K.G_OW], ints[g + K.G_KH],
            ints[g + K.G_KW], ints[g + K.G_SH], ints[g + K.G_SW], ints[g + K.G_PT], ints[g + K.G_PL],
            ints[g + K.G_MODE])


@cuda.jit(cache=True)
def pool_forward(ints, g, ws, x, a, b):
    """The ``b`` pooled maps at ws[a:] from the maps at ws[x:]; geometry at ints[g:]."""
    H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode = _window(ints, g)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * OH * OW * C, stride):
        s, oh, ow, c = pixel(e, OH, OW, C)
        h0, h1 = max(oh * SH - PT, 0), min(oh * SH - PT + KH, H)
        w0, w1 = max(ow * SW - PL, 0), min(ow * SW - PL + KW, W)
        base = x + s * H * W * C + c
        out = ws[base + (h0 * W + w0) * C] if mode == K.MAX else _ZERO
        for ih in range(h0, h1):
            for iw in range(w0, w1):
                v = ws[base + (ih * W + iw) * C]
                if mode == K.MAX:
                    out = v if v > out else out
                else:
                    out += v
        if mode == K.AVERAGE:
            out *= _ONE / np.float32((h1 - h0) * (w1 - w0))
        ws[a + e] = out


@cuda.jit(cache=True)
def pool_backward(ints, g, ws, gs, x, a, b):
    """gs[x:] from gs[a:]: each input takes, from every window covering it (in row-major order of
    windows), the window's gradient over its size (average) or, when it is the window's first
    input equal to the window's output, the whole gradient (max)."""
    H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode = _window(ints, g)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * H * W * C, stride):
        s, ih, iw, c = pixel(e, H, W, C)
        base = x + s * H * W * C + c
        v = ws[x + e]
        d = _ZERO
        # windows oh with oh * SH - PT <= ih < oh * SH - PT + KH, likewise ow
        for oh in range(max(0, (ih + PT - KH) // SH + 1), min(OH - 1, (ih + PT) // SH) + 1):
            h0, h1 = max(oh * SH - PT, 0), min(oh * SH - PT + KH, H)
            for ow in range(max(0, (iw + PL - KW) // SW + 1), min(OW - 1, (iw + PL) // SW) + 1):
                w0, w1 = max(ow * SW - PL, 0), min(ow * SW - PL + KW, W)
                o = a + ((s * OH + oh) * OW + ow) * C + c
                if mode == K.AVERAGE:
                    d += gs[o] * (_ONE / np.float32((h1 - h0) * (w1 - w0)))
                elif v == ws[o]:
                    first = True        # no earlier input of the window equals its output
                    for jh in range(h0, ih + 1):
                        for jw in range(w0, w1 if jh < ih else iw):
                            if ws[base + (jh * W + jw) * C] == ws[o]:
                                first = False
                    if first:
                        d += gs[o]
        gs[x + e] = d


def _pool_args(session, i, b):
    rec = session.prog[i]
    return session.ints, int(rec[IAUX]) + HEADER, b * int(rec[X_POS]), b * int(rec[A_POS])


def _pool_sizes(session, i):
    H, W, C, OH, OW = (int(v) for v in session.ints_host[int(session.prog[i][IAUX]) + HEADER:][:5])
    return H * W * C, OH * OW * C


def pool_forward_plan(session, i, b, training):
    ints, g, x, a = _pool_args(session, i, b)
    return [planned(pool_forward, b * _pool_sizes(session, i)[1], ints, g, session.ws, x, a, b)]


def pool_backward_plan(session, i, b, training):
    if not int(session.prog[i][FLAGS]) & NEED_DX:
        return []
    ints, g, x, a = _pool_args(session, i, b)
    return [planned(pool_backward, b * _pool_sizes(session, i)[0], ints, g, session.ws, session.gs, x, a, b)]


register(K.POOL, pool_forward_plan, pool_backward_plan)


# -- GlobalAveragePooling1D / GlobalMaxPooling1D: (T, C) -> (C,) ---------------------------------

@cuda.jit(cache=True)
def pooling1d_forward(t, c, mode, ws, x, a, b):
    """The mean or maximum over the ``t`` steps of each channel, one thread per output value."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * c, stride):
        base = x + (e // c) * t * c + e % c
        out = ws[base]
        if mode == G1.MAXIMUM:
            for s in range(1, t):
                out = max(out, ws[base + s * c])
        else:
            out = _ZERO
            for s in range(t):
                out += ws[base + s * c]
            out = out / np.float32(t)
        ws[a + e] = out


@cuda.jit(cache=True)
def pooling1d_backward(t, c, mode, ws, gs, x, a, b):
    """Average: g / t to every step; maximum: g shared equally among the steps equal to the maximum."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * t * c, stride):
        j = e % c
        r = e // (t * c)
        o = a + r * c + j
        if mode == G1.MAXIMUM:
            m = ws[o]
            ties = _ZERO
            for s in range(t):
                if ws[x + r * t * c + s * c + j] == m:
                    ties += _ONE
            gs[x + e] = gs[o] / ties if ws[x + e] == m else _ZERO
        else:
            gs[x + e] = gs[o] / np.float32(t)


def _pooling1d(session, i, b):
    rec = session.prog[i]
    if int(rec[N_INS]) > 1:
        raise NotImplementedError("the CUDA engine runs one-input ops: a masked global pooling is not supported")
    t, c, mode = (int(v) for v in session.ints_host[int(rec[IAUX]):][:3])
    return t, c, mode, b * int(rec[X_POS]), b * int(rec[A_POS])


def pooling1d_forward_plan(session, i, b, training):
    t, c, mode, x, a = _pooling1d(session, i, b)
    return [planned(pooling1d_forward, b * c, t, c, mode, session.ws, x, a, b)]


def pooling1d_backward_plan(session, i, b, training):
    if not int(session.prog[i][FLAGS]) & NEED_DX:
        return []
    t, c, mode, x, a = _pooling1d(session, i, b)
    return [planned(pooling1d_backward, b * t * c, t, c, mode, session.ws, session.gs, x, a, b)]


register(G1.POOLING1D, pooling1d_forward_plan, pooling1d_backward_plan)
