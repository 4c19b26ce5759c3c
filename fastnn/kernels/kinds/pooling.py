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
window's winner again (the first input equal to the window's output)
instead of keeping its position. Windows that tile the map (stride = pool
size, valid: the usual ``MaxPooling2D(2)``) write each input's gradient
once, without zeroing the map first.
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
                out = ws[a + (oh * OW + ow) * C:a + (oh * OW + ow + 1) * C]
                first = ws[x + (h0 * W + w0) * C:x + (h0 * W + w0 + 1) * C]
                for c in range(C):
                    out[c] = first[c] if mode == MAX else _ZERO
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        v = ws[x + (ih * W + iw) * C:x + (ih * W + iw + 1) * C]
                        if mode == MAX:
                            for c in range(C):
                                out[c] = v[c] if v[c] > out[c] else out[c]
                        else:
                            for c in range(C):
                                out[c] += v[c]
                if mode == AVERAGE:
                    inv = _ONE / np.float32((h1 - h0) * (w1 - w0))
                    for c in range(C):
                        out[c] *= inv


@njit(**PART)
def pool_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    """Max: the gradient of a window's output goes to the first of its inputs equal
    to it: ``left`` holds what is not yet given out, per channel, and each input in
    turn takes ``left * (input == output)`` (arithmetic, not branches: it vectorises)."""
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode = _geometry(rec, ints)
    x0, a0 = b * rec[P.X_POS], b * rec[P.A_POS]
    acc = (rec[P.ACC] & 1) != 0
    tiled = SH == KH and SW == KW and PT == 0 and PL == 0
    left = tmp[:C]
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        x, a = x0 + s * H * W * C, a0 + s * OH * OW * C
        if not acc:
            if tiled:       # only what no window covers: the rest is written below
                for ih in range(H):
                    for iw in range(W):
                        if ih >= OH * KH or iw >= OW * KW:
                            d = gs[x + (ih * W + iw) * C:x + (ih * W + iw + 1) * C]
                            for c in range(C):
                                d[c] = _ZERO
            else:
                d = gs[x:x + H * W * C]
                for i in range(H * W * C):
                    d[i] = _ZERO
        # tiled windows without ACC write each input once, else add
        write = tiled and not acc
        for oh in range(OH):
            h0, h1 = max(oh * SH - PT, 0), min(oh * SH - PT + KH, H)
            for ow in range(OW):
                w0, w1 = max(ow * SW - PL, 0), min(ow * SW - PL + KW, W)
                o = a + (oh * OW + ow) * C
                out, g = ws[o:o + C], gs[o:o + C]
                if mode == MAX:
                    for c in range(C):
                        left[c] = g[c]
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            i = x + (ih * W + iw) * C
                            v, d = ws[i:i + C], gs[i:i + C]
                            if write:
                                for c in range(C):
                                    u = left[c] * np.float32(v[c] == out[c])
                                    d[c] = u
                                    left[c] -= u
                            else:
                                for c in range(C):
                                    u = left[c] * np.float32(v[c] == out[c])
                                    d[c] += u
                                    left[c] -= u
                else:
                    inv = _ONE / np.float32((h1 - h0) * (w1 - w0))
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            d = gs[x + (ih * W + iw) * C:x + (ih * W + iw + 1) * C]
                            if write:
                                for c in range(C):
                                    d[c] = g[c] * inv
                            else:
                                for c in range(C):
                                    d[c] += g[c] * inv


POOL = register_parallel("Pooling", pool_forward_part, (pool_backward_part,), on_cuda=True)


def geometry(H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode):
    return (H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, mode)
