"""Pooling kinds (channels_last): max and average pooling over windows of a
map, and over the whole map (global pooling is the window ``H x W``).

A sample is an ``H x W x C`` map (1-D pooling: ``H = 1``); output pixel
(oh, ow) pools the window of rows [oh * SH - PT, + KH) and columns
[ow * SW - PL, + KW), clipped to the map: "same" padding adds no values,
so a max ignores the padding and an average divides by the number of
values actually in the window (TensorFlow's ``avg_pool``, which Keras 3
uses). Max pooling's gradient goes to the first largest value of each
window in row-major order, as TensorFlow's ``MaxPoolGrad`` does.

Both passes split the samples across threads; the backward pass finds each
window's largest value again instead of keeping its position. Windows that
tile the map (stride = pool size, valid: the usual ``MaxPooling2D(2)``) take
a shorter way back: each input gets its gradient written once, the winner
being the first input equal to the window's output.
"""
import numpy as np
from numba import njit

from .. import program as P
from .parallel import HEADER, PART, register_parallel, sample_range

(G_H, G_W, G_C, G_OH, G_OW, G_KH, G_KW, G_SH, G_SW, G_PT, G_PL, G_MODE) = range(12)
MAX, AVERAGE = 0, 1

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@njit(cache=True, inline="always")
def _geometry(rec, ints):
    h = rec[P.IAUX] + HEADER
    return (ints[h + G_H], ints[h + G_W], ints[h + G_C], ints[h + G_OH], ints[h + G_OW], ints[h + G_KH],
            ints[h + G_KW], ints[h + G_SH], ints[h + G_SW], ints[h + G_PT], ints[h + G_PL], ints[h + G_MODE])


@njit(**PART)
def pool_forward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode = _geometry(rec, ints)
    x0, a0 = b * rec[P.X_POS], b * rec[P.A_POS]
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        x, a = x0 + s * H * W * C, a0 + s * OH * OW * C
        for oh in range(OH):
            h0, h1 = max(oh * SH - PT, 0), min(oh * SH - PT + KH, H)
            for ow in range(OW):
                w0, w1 = max(ow * SW - PL, 0), min(ow * SW - PL + KW, W)
                o = a + (oh * OW + ow) * C
                first = x + (h0 * W + w0) * C
                for c in range(C):
                    ws[o + c] = ws[first + c] if mode == MAX else _ZERO
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        i = x + (ih * W + iw) * C
                        if mode == MAX:
                            for c in range(C):
                                ws[o + c] = max(ws[o + c], ws[i + c])
                        else:
                            for c in range(C):
                                ws[o + c] += ws[i + c]
                if mode == AVERAGE:
                    inv = _ONE / np.float32((h1 - h0) * (w1 - w0))
                    for c in range(C):
                        ws[o + c] *= inv


@njit(**PART)
def pool_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode = _geometry(rec, ints)
    x0, a0 = b * rec[P.X_POS], b * rec[P.A_POS]
    acc = (rec[P.ACC] & 1) != 0
    s0, s1 = sample_range(b, t, n)
    if SH == KH and SW == KW and PT == 0 and PL == 0:
        _tiled_backward(ws, gs, tmp, x0, a0, s0, s1, H, W, C, OH, OW, KH, KW, mode, acc)
        return
    where = np.empty(C, dtype=np.int64)
    best = tmp[:C]
    for s in range(s0, s1):
        x, a = x0 + s * H * W * C, a0 + s * OH * OW * C
        if not acc:
            for i in range(H * W * C):
                gs[x + i] = _ZERO
        for oh in range(OH):
            h0, h1 = max(oh * SH - PT, 0), min(oh * SH - PT + KH, H)
            for ow in range(OW):
                w0, w1 = max(ow * SW - PL, 0), min(ow * SW - PL + KW, W)
                o = a + (oh * OW + ow) * C
                if mode == MAX:
                    first = x + (h0 * W + w0) * C
                    for c in range(C):
                        best[c] = ws[first + c]
                        where[c] = first + c
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            i = x + (ih * W + iw) * C
                            for c in range(C):
                                if ws[i + c] > best[c]:
                                    best[c] = ws[i + c]
                                    where[c] = i + c
                    for c in range(C):
                        gs[where[c]] += gs[o + c]
                else:
                    inv = _ONE / np.float32((h1 - h0) * (w1 - w0))
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            i = x + (ih * W + iw) * C
                            for c in range(C):
                                gs[i + c] += gs[o + c] * inv


@njit(cache=True, inline="always")
def _tiled_backward(ws, gs, found, x0, a0, s0, s1, H, W, C, OH, OW, KH, KW, mode, acc):
    """Windows that tile the map (stride = pool size, no padding): each input is
    in one window at most, so its gradient is written once, without zeroing
    the map first or adding into it. Max: the first input equal to the
    window's output gets the gradient (``found`` marks the channels done)."""
    inv = _ONE / np.float32(KH * KW)
    for s in range(s0, s1):
        x, a = x0 + s * H * W * C, a0 + s * OH * OW * C
        for oh in range(OH):
            for ow in range(OW):
                o = a + (oh * OW + ow) * C
                if mode == MAX:
                    for c in range(C):
                        found[c] = _ZERO
                for kh in range(KH):
                    for kw in range(KW):
                        i = x + ((oh * KH + kh) * W + ow * KW + kw) * C
                        if mode == MAX:
                            for c in range(C):
                                hit = found[c] == _ZERO and ws[i + c] == ws[o + c]
                                v = gs[o + c] if hit else _ZERO
                                gs[i + c] = gs[i + c] + v if acc else v
                                found[c] = _ONE if hit else found[c]
                        else:
                            for c in range(C):
                                v = gs[o + c] * inv
                                gs[i + c] = gs[i + c] + v if acc else v
        if not acc:     # rows and columns no window covers (valid pooling of an uneven map)
            for ih in range(H):
                for iw in range(W):
                    if ih >= OH * KH or iw >= OW * KW:
                        for c in range(C):
                            gs[x + (ih * W + iw) * C + c] = _ZERO


POOL = register_parallel("Pooling", pool_forward_part, (pool_backward_part,))


def geometry(H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode):
    return (H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode)
