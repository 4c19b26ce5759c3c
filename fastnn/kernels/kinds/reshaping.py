"""Feature-map reshaping kinds (channels_last): a shifted window of the map
(ZeroPadding2D, Cropping2D) and nearest-neighbour upsampling (UpSampling2D).

Window: output pixel (oh, ow) of the ``OH x OW x C`` output is input pixel
(oh + DH, ow + DW) of the ``H x W x C`` input, or zeros where that lies
outside it (padding: DH, DW < 0; cropping: DH, DW >= 0). Its gradient goes
back the same way; input pixels no output reads get zero.

Upsample: output pixel (oh, ow) is input pixel (oh // SH, ow // SW); the
gradient of an input pixel is the sum over its ``SH x SW`` copies.

Samples are split across threads in both passes.
"""
import numpy as np
from numba import njit

from .. import program as P
from .parallel import HEADER, PART, register_parallel, sample_range

(G_H, G_W, G_C, G_OH, G_OW, G_DH, G_DW) = range(7)
_ZERO = np.float32(0.0)


@njit(cache=True, inline="always")
def _geometry(rec, ints):
    h = rec[P.IAUX] + HEADER
    return (ints[h + G_H], ints[h + G_W], ints[h + G_C], ints[h + G_OH], ints[h + G_OW], ints[h + G_DH],
            ints[h + G_DW])


# The copies run over slices indexed by ``range`` variables: computed indices into ws and gs keep
# Numba's negative-index wraparound, and LLVM leaves such a loop scalar.

@njit(cache=True, inline="always")
def _zero(dst):
    for i in range(dst.shape[0]):
        dst[i] = _ZERO


@njit(cache=True, inline="always")
def _add(dst, src):
    for i in range(dst.shape[0]):
        dst[i] += src[i]


@njit(**PART)
def window_forward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    H, W, C, OH, OW, DH, DW = _geometry(rec, ints)
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        x, a = b * rec[P.X_POS] + s * H * W * C, b * rec[P.A_POS] + s * OH * OW * C
        for oh in range(OH):
            ih = oh + DH
            for ow in range(OW):
                iw = ow + DW
                out = ws[a + (oh * OW + ow) * C:a + (oh * OW + ow + 1) * C]
                if 0 <= ih < H and 0 <= iw < W:
                    src = ws[x + (ih * W + iw) * C:x + (ih * W + iw + 1) * C]
                    for c in range(C):
                        out[c] = src[c]
                else:
                    for c in range(C):
                        out[c] = _ZERO


@njit(**PART)
def window_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    H, W, C, OH, OW, DH, DW = _geometry(rec, ints)
    acc = (rec[P.ACC] & 1) != 0
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        x, a = b * rec[P.X_POS] + s * H * W * C, b * rec[P.A_POS] + s * OH * OW * C
        if not acc:
            _zero(gs[x:x + H * W * C])
        for oh in range(max(-DH, 0), min(H - DH, OH)):
            for ow in range(max(-DW, 0), min(W - DW, OW)):
                i = x + ((oh + DH) * W + ow + DW) * C
                o = a + (oh * OW + ow) * C
                _add(gs[i:i + C], gs[o:o + C])


WINDOW = register_parallel("Window", window_forward_part, (window_backward_part,), on_cuda=True)


@njit(**PART)
def upsample_forward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    H, W, C, SH, SW, _, _ = _geometry(rec, ints)
    OH, OW = H * SH, W * SW
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        x, a = b * rec[P.X_POS] + s * H * W * C, b * rec[P.A_POS] + s * OH * OW * C
        for oh in range(OH):
            for ow in range(OW):
                i = x + ((oh // SH) * W + ow // SW) * C
                out, src = ws[a + (oh * OW + ow) * C:a + (oh * OW + ow + 1) * C], ws[i:i + C]
                for c in range(C):
                    out[c] = src[c]


@njit(**PART)
def upsample_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    H, W, C, SH, SW, _, _ = _geometry(rec, ints)
    OH, OW = H * SH, W * SW
    acc = (rec[P.ACC] & 1) != 0
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        x, a = b * rec[P.X_POS] + s * H * W * C, b * rec[P.A_POS] + s * OH * OW * C
        if not acc:
            _zero(gs[x:x + H * W * C])
        for oh in range(OH):
            for ow in range(OW):
                i = x + ((oh // SH) * W + ow // SW) * C
                o = a + (oh * OW + ow) * C
                _add(gs[i:i + C], gs[o:o + C])


UPSAMPLE = register_parallel("UpSampling2D", upsample_forward_part, (upsample_backward_part,), on_cuda=True)
