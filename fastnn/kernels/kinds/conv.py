"""Convolution kinds (channels_last): Conv (Conv1D/Conv2D), DepthwiseConv2D and SeparableConv2D.

A sample is an ``H x W x C`` map stored row-major (Conv1D: ``H = 1``); the
output is ``OH x OW x F``. Keras's kernel layouts are used as they are:
Conv ``(KH, KW, C, F)`` (Conv1D's ``(KW, C, F)`` is the same floats), read
as a ``K x F`` matrix with ``K = KH * KW * C``; Depthwise ``(KH, KW, C, M)``,
output channel ``c * M + m``; Separable: that depthwise kernel, then a
pointwise ``(C * M) x F`` matrix, then the bias.

Conv as GEMM (im2col): the ``P = OH * OW`` output pixels of a sample are
the rows of ``Z = col(X) @ W`` where row ``p`` of ``col(X)`` is the ``K``
input values under the kernel at ``p`` (zeros in the padding), ordered
(kh, kw, c) like the kernel's rows. A thread gathers ``col`` for a group of
its samples (as many as fit ``TMP_TARGET`` floats) into its scratch and
runs one single-threaded SGEMM on the group, then adds the bias and applies
the activation while the rows are in its cache. A 1x1 stride-1 convolution
reads X itself (no gathering). Backward:
- part 1 (samples split): dZ = dA * act'(z), in place where z is not kept;
- part 2: thread ``t`` computes rows [k0, k1) of dW = sum_samples col^T dZ
  (gathering its columns of col again) and its block of db, then, for its
  samples, dcol = dZ W^T and scatters it back into dX (col2im). Splitting
  dW by rows keeps every sum in one order whatever the number of threads,
  and needs no reduction across threads.
Depthwise runs direct loops; its backward part splits channels (weights,
bias and input gradient of a channel depend on that channel alone).

Geometry: the op's integer constants after the parallel header (G_*).
z, the pre-activations, are kept for the backward pass in the op's scratch
unless the activation is linear, ReLU or softmax: those are computed in
place in the output slot (ReLU's derivative is read from the output).
"""
import numpy as np
from numba import njit

from .. import program as P
from ..cpu.activations import ACTIVATION_SIG, LINEAR, RELU, SOFTMAX, relu_forward, softmax_rows, softmax_rows_backward
from ..cpu.blas import gemm
from ..cpu.pointers import call, pointer_from_address
from .parallel import HEADER, PART, block_range, register_parallel, sample_range

acts_pointer = pointer_from_address(ACTIVATION_SIG)

(G_H, G_W, G_C, G_OH, G_OW, G_KH, G_KW, G_SH, G_SW, G_DH, G_DW, G_PT, G_PL, G_F, G_GROUP, G_ZIN, G_ZOFF, G_ZSTRIDE,
 G_ACTS, G_OUTC, G_BY_TAPS) = range(21)
N_GEOMETRY = 21
# G_F: filters (Depthwise, Separable: the depth multiplier M); G_OUTC: output channels (F; Depthwise C * M)
# G_GROUP: samples gathered per GEMM; G_ZIN: 1 when z is computed in place in the output slot, else z of
# sample s is at b * Z_POS + s * G_ZSTRIDE + G_ZOFF; G_ACTS: address of ``activations.elementwise`` (0: unused);
# G_BY_TAPS: 1 when col(X) is gathered tap by tap (``_columns``)
TMP_TARGET = 1 << 16    # floats of gathered columns per thread (256 KB: an L2's share)
# Below this many input channels a tap's values are too few to copy as a vector: col(X) is gathered tap by
# tap (one input channel: ~4x faster than pixel by pixel; 16 channels: 1.5x slower)
TAPS_BELOW_C = 8

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


def in_place(act):
    """Whether activation ``act`` is computed in the output slot (no z kept)."""
    return act in (LINEAR, RELU, SOFTMAX)


@njit(cache=True, inline="always")
def _g(rec, ints, k):
    return ints[rec[P.IAUX] + HEADER + k]


@njit(cache=True, inline="always")
def _z_at(rec, ints, b, s, width):
    """Where sample ``s``'s pre-activations (``width`` floats) are."""
    if _g(rec, ints, G_ZIN) != 0:
        return b * rec[P.A_POS] + s * width
    return b * rec[P.Z_POS] + s * _g(rec, ints, G_ZSTRIDE) + _g(rec, ints, G_ZOFF)


@njit(cache=True, inline="always")
def _taps(o, S, D, PAD, K, N):
    """The kernel taps [k0, k1) whose input coordinate ``o * S + k * D - PAD`` of output
    coordinate ``o`` lies in [0, N) (stride S, dilation D >= 1; empty when none does)."""
    first = o * S - PAD
    if D == 1:      # no integer division in the common case: this runs once an output pixel
        return max(-first, 0), min(K, N - first)
    k0 = 0 if first >= 0 else (D - 1 - first) // D
    return k0, min(K, (N - 1 - first) // D + 1)


@njit(cache=True, inline="always")
def _window(oh, ow, H, W, KH, KW, SH, SW, DH, DW, PT, PL):
    """``kh0, kh1, kw0, kw1``: the taps of output pixel (oh, ow) that read the input map,
    not its padding (the direct loops skip the rest instead of testing each tap)."""
    kh0, kh1 = _taps(oh, SH, DH, PT, KH, H)
    kw0, kw1 = _taps(ow, SW, DW, PL, KW, W)
    return kh0, kh1, kw0, kw1


# Compiled once and called, not inlined: the forward and backward parts share it, and inlined it
# was about 2 s of each one's compile.
@njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _columns(by_taps, ws, x, H, W, C, OH, OW, KW, SH, SW, DH, DW, PT, PL, k0, k1, dst, d0, ld):
    """Columns [k0, k1) of col(X) (all OH * OW rows) for the sample at ws[x:] into dst[d0:] (row stride ``ld``):
    pixel by pixel, each tap's C values one vector copy; or ``by_taps``, one strided loop over a row of output
    pixels for each tap (``TAPS_BELOW_C``)."""
    if by_taps:
        _gather_taps(ws, x, H, W, C, OH, OW, KW, SH, SW, DH, DW, PT, PL, k0, k1, dst, d0, ld)
    else:
        _gather_pixels(ws, x, H, W, C, OH * OW, OW, KW, SH, SW, DH, DW, PT, PL, k0, k1, dst, d0, ld)


@njit(cache=True, inline="always")
def _gather_pixels(ws, x, H, W, C, NP, OW, KW, SH, SW, DH, DW, PT, PL, k0, k1, dst, d0, ld):
    """``_columns`` row by row. (Copies go through slices indexed by ``range`` variables, which
    Numba and LLVM turn into vector moves.)"""
    q0, q1 = k0 // C, (k1 - 1) // C + 1
    for p in range(NP):
        oh, ow = p // OW, p % OW
        row = d0 + p * ld - k0
        for q in range(q0, q1):
            kh, kw = q // KW, q % KW
            c0, c1 = max(k0 - q * C, 0), min(k1 - q * C, C)
            ih, iw = oh * SH + kh * DH - PT, ow * SW + kw * DW - PL
            out = dst[row + q * C + c0:row + q * C + c1]
            if 0 <= ih < H and 0 <= iw < W:
                src = ws[x + (ih * W + iw) * C + c0:x + (ih * W + iw) * C + c1]
                for c in range(c1 - c0):
                    out[c] = src[c]
            else:
                for c in range(c1 - c0):
                    out[c] = _ZERO


@njit(cache=True, inline="always")
def _out_columns(kw, OW, W, SW, DW, PL):
    """Output columns [ow0, ow1) whose kernel tap ``kw`` reads an input column (``ow * SW - lo``,
    returned third) inside [0, W), not the padding."""
    lo = PL - kw * DW
    ow0 = min(OW, (lo + SW - 1) // SW) if lo > 0 else 0
    ow1 = max(ow0, min(OW, (W - 1 + lo) // SW + 1)) if W - 1 + lo >= 0 else ow0
    return ow0, ow1, lo


@njit(cache=True, inline="always")
def _gather_taps(ws, x, H, W, C, OH, OW, KW, SH, SW, DH, DW, PT, PL, k0, k1, dst, d0, ld):
    """``_columns`` tap by tap."""
    for q in range(k0 // C, (k1 - 1) // C + 1):
        kh, kw = q // KW, q % KW
        c0, c1 = max(k0 - q * C, 0), min(k1 - q * C, C)
        ow0, ow1, lo = _out_columns(kw, OW, W, SW, DW, PL)
        for oh in range(OH):
            ih = oh * SH + kh * DH - PT
            row = d0 + oh * OW * ld + q * C - k0
            if ih < 0 or ih >= H:
                v0, v1 = OW, OW
            else:
                v0, v1 = ow0, ow1
            src = x + (ih * W - lo) * C
            for ow in range(OW):
                if v0 <= ow < v1:
                    for c in range(c0, c1):
                        dst[row + ow * ld + c] = ws[src + ow * SW * C + c]
                else:
                    for c in range(c0, c1):
                        dst[row + ow * ld + c] = _ZERO


@njit(cache=True, inline="always")
def _scatter(src, s0, gs, x, H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL):
    """dX += col2im(dcol): the P x K block at src[s0:] added into the sample's map at gs[x:].
    Tap by tap, so consecutive additions go to different input pixels (pixel by pixel, each
    waited on the last one's store: 3.6x slower on the chapter CNN's second layer)."""
    K = KH * KW * C
    for q in range(KH * KW):
        kh, kw = q // KW, q % KW
        ow0, ow1, lo = _out_columns(kw, OW, W, SW, DW, PL)
        for oh in range(OH):
            ih = oh * SH + kh * DH - PT
            if ih < 0 or ih >= H:
                continue
            for ow in range(ow0, ow1):
                iw = ow * SW - lo
                d = gs[x + (ih * W + iw) * C:x + (ih * W + iw + 1) * C]
                o = src[s0 + (oh * OW + ow) * K + q * C:s0 + (oh * OW + ow) * K + (q + 1) * C]
                for c in range(C):
                    d[c] += o[c]


@njit(cache=True, inline="always")
def _bias_act(rec, ints, params, bias, ws, z, a, rows, width):
    """z += the bias at params[bias:] (none if bias < 0); a = act(z) for ``rows`` rows of
    ``width`` at ws[z:], ws[a:] (z == a: in place)."""
    if bias >= 0:
        br = params[bias:bias + width]
        for r in range(rows):
            zr = ws[z + r * width:z + (r + 1) * width]
            for j in range(width):
                zr[j] += br[j]
    _act_only(rec, ints, ws, z, a, rows, width)


@njit(cache=True, inline="always")
def _bias_gradient(rec, ints, grads, gs, b, t, n, NP, F, w_acc):
    """Part ``t``'s block of db = dZ summed over all ``b`` samples and their ``NP``
    pixels (dZ: NP x F a sample, at ``_z_at``); added to db with ``w_acc``."""
    f0, f1 = block_range(F, t, n)
    bias = rec[P.B_OFF]
    if bias < 0 or f0 >= f1:
        return
    db = grads[bias + f0:bias + f1]     # slices, not indices into grads and gs: then the loop vectorises (7x)
    if not w_acc:
        for f in range(f1 - f0):
            db[f] = _ZERO
    for s in range(b):
        z = _z_at(rec, ints, b, s, NP * F)
        for p in range(NP):
            dz = gs[z + p * F + f0:z + p * F + f1]
            for f in range(f1 - f0):
                db[f] += dz[f]


@njit(**PART)
def activation_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    """dZ = dA * act'(z) for part ``t``'s samples (kinds of this module)."""
    act = rec[P.ACT]
    if act == LINEAR:
        return
    width, last = rec[P.N_OUT], _g(rec, ints, G_OUTC)
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        a = b * rec[P.A_POS] + s * width
        z = _z_at(rec, ints, b, s, width)
        if act == RELU:
            out, grad = ws[a:a + width], gs[a:a + width]
            for j in range(width):
                grad[j] = grad[j] if out[j] > _ZERO else _ZERO
        elif act == SOFTMAX:
            softmax_rows_backward(ws, gs, a, gs, z, width // last, last)
        else:
            call(acts_pointer(_g(rec, ints, G_ACTS)), act, True, ws[z:z + width], ws[a:a + width],
                 gs[a:a + width], gs[z:z + width])


# -- Conv ----------------------------------------------------------------------

@njit(cache=True, inline="always")
def _conv_geometry(rec, ints):
    h = rec[P.IAUX] + HEADER
    return (ints[h + G_H], ints[h + G_W], ints[h + G_C], ints[h + G_OH], ints[h + G_OW], ints[h + G_KH],
            ints[h + G_KW], ints[h + G_SH], ints[h + G_SW], ints[h + G_DH], ints[h + G_DW], ints[h + G_PT],
            ints[h + G_PL], ints[h + G_F], ints[h + G_GROUP])


@njit(cache=True, inline="always")
def _direct(KH, KW, SH, SW, PT, PL):
    """A 1x1 stride-1 convolution without padding reads its input as col(X)."""
    return KH == 1 and KW == 1 and SH == 1 and SW == 1 and PT == 0 and PL == 0


@njit(**PART)
def conv_forward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, F, G = _conv_geometry(rec, ints)
    NP, K = OH * OW, KH * KW * C
    ab = consts[rec[P.AUX]:rec[P.AUX] + 2]
    x0, a0 = b * rec[P.X_POS], b * rec[P.A_POS]
    s0, s1 = sample_range(b, t, n)
    direct = _direct(KH, KW, SH, SW, PT, PL)
    by_taps = _g(rec, ints, G_BY_TAPS) != 0
    s = s0
    while s < s1:
        g = s1 - s if direct else min(G, s1 - s)
        z = _z_at(rec, ints, b, s, NP * F)
        if direct:
            gemm(False, False, g * NP, F, K, ab, ws, x0 + s * H * W * C, C, params, rec[P.W_OFF], F, ws, z, F)
        else:
            for j in range(g):
                _columns(by_taps, ws, x0 + (s + j) * H * W * C, H, W, C, OH, OW, KW, SH, SW, DH, DW, PT, PL, 0, K, tmp,
                         j * NP * K, K)
            gemm(False, False, g * NP, F, K, ab, tmp, 0, K, params, rec[P.W_OFF], F, ws, z, F)
        # bias and activation: the g samples' z in one block where it is one, else sample by
        # sample; one call site, as each inlined copy adds to the compile time
        blocks = 1 if _g(rec, ints, G_ZIN) != 0 or g == 1 else g
        for j in range(blocks):
            q = s + j * (g // blocks)
            _bias_act(rec, ints, params, rec[P.B_OFF], ws, _z_at(rec, ints, b, q, NP * F), a0 + q * NP * F,
                      g * NP // blocks, F)
        s += g


@njit(**PART)
def conv_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    """Rows [k0, k1) of dW and a block of db (all samples); dX of part ``t``'s samples."""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, F, G = _conv_geometry(rec, ints)
    NP, K = OH * OW, KH * KW * C
    flags = rec[P.FLAGS]
    ab = consts[rec[P.AUX]:rec[P.AUX] + 4]
    x0 = b * rec[P.X_POS]
    direct = _direct(KH, KW, SH, SW, PT, PL)
    zs = _g(rec, ints, G_ZSTRIDE) if _g(rec, ints, G_ZIN) == 0 else NP * F
    by_taps = _g(rec, ints, G_BY_TAPS) != 0
    if (flags & P.FROZEN) == 0:
        w_acc = (flags & P.W_ACC) != 0
        k0, k1 = block_range(K, t, n)
        if k0 < k1:
            w = rec[P.W_OFF] + k0 * F
            kk = k1 - k0
            s = 0
            while s < b:
                g = min(G, b - s)
                if zs != NP * F:
                    g = 1   # z of consecutive samples is not one block
                beta = ab[2:] if (w_acc or s > 0) else ab[:2]
                z = _z_at(rec, ints, b, s, NP * F)
                if direct:
                    gemm(True, False, kk, F, g * NP, beta, ws, x0 + s * H * W * C + k0, C, gs, z, F, grads, w, F)
                else:
                    for j in range(g):
                        _columns(by_taps, ws, x0 + (s + j) * H * W * C, H, W, C, OH, OW, KW, SH, SW, DH, DW, PT, PL, k0, k1,
                                 tmp, j * NP * kk, kk)
                    gemm(True, False, kk, F, g * NP, beta, tmp, 0, kk, gs, z, F, grads, w, F)
                s += g
        _bias_gradient(rec, ints, grads, gs, b, t, n, NP, F, w_acc)
    if (flags & P.NEED_DX) == 0:
        return
    acc = (rec[P.ACC] & 1) != 0
    s0, s1 = sample_range(b, t, n)
    s = s0
    while s < s1:
        g = min(G, s1 - s)
        if zs != NP * F:
            g = 1
        z = _z_at(rec, ints, b, s, NP * F)
        if direct:
            gemm(False, True, g * NP, C, F, ab[2:] if acc else ab[:2], gs, z, F, params, rec[P.W_OFF], F, gs,
                 x0 + s * H * W * C, C)
        else:
            gemm(False, True, g * NP, K, F, ab[:2], gs, z, F, params, rec[P.W_OFF], F, tmp, 0, K)
            for j in range(g):
                x = x0 + (s + j) * H * W * C
                if not acc:
                    for i in range(H * W * C):
                        gs[x + i] = _ZERO
                _scatter(tmp, j * NP * K, gs, x, H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL)
        s += g


CONV = register_parallel("Conv", conv_forward_part, (activation_backward_part, conv_backward_part), on_cuda=True)


# -- DepthwiseConv2D -------------------------------------------------------------

@njit(cache=True, inline="always")
def _depthwise_sample(ws, x, params, w, dst, H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, M):
    """dst (OH x OW x C*M) += depthwise(x) for one sample (dst zeroed or holding the bias)."""
    CM = C * M
    for p in range(OH * OW):
        oh, ow = p // OW, p % OW
        o = dst + p * CM
        kh0, kh1, kw0, kw1 = _window(oh, ow, H, W, KH, KW, SH, SW, DH, DW, PT, PL)
        for kh in range(kh0, kh1):
            for kw in range(kw0, kw1):
                xi = x + ((oh * SH + kh * DH - PT) * W + ow * SW + kw * DW - PL) * C
                wk = w + (kh * KW + kw) * CM
                if M == 1:      # slices, not computed indices: the loop vectorises
                    out, xs, wc = ws[o:o + C], ws[xi:xi + C], params[wk:wk + C]
                    for c in range(C):
                        out[c] += xs[c] * wc[c]
                else:
                    for c in range(C):
                        xv = ws[xi + c]
                        for m in range(M):
                            ws[o + c * M + m] += xv * params[wk + c * M + m]


@njit(cache=True, inline="always")
def _depthwise_backward_block(rec, ints, params, grads, ws, gs, b, t, n, dz_of, bias):
    """Part ``t``'s block of channels of the depthwise gradients over all ``b`` samples:
    dW and db (``bias`` >= 0: its offset; unless frozen, added with W_ACC) and, when
    needed, dX (added with ACC). ``dz_of[s]``: where sample s's output gradient
    (OH x OW x C*M) is in gs. (A channel's gradients depend on that channel alone.)"""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, M, _ = _conv_geometry(rec, ints)
    c0, c1 = block_range(C, t, n)
    if c0 >= c1:
        return
    flags = rec[P.FLAGS]
    frozen, w_acc = (flags & P.FROZEN) != 0, (flags & P.W_ACC) != 0
    need_dx, acc = (flags & P.NEED_DX) != 0, (rec[P.ACC] & 1) != 0
    w = rec[P.W_OFF]
    CM = C * M
    x0 = b * rec[P.X_POS]
    if not frozen and not w_acc:
        for q in range(KH * KW):
            for c in range(c0 * M, c1 * M):
                grads[w + q * CM + c] = _ZERO
        if bias >= 0:
            for c in range(c0 * M, c1 * M):
                grads[bias + c] = _ZERO
    for s in range(b):
        x = x0 + s * H * W * C
        dz = dz_of[s]
        if need_dx and not acc:
            for i in range(H * W):
                for c in range(c0, c1):
                    gs[x + i * C + c] = _ZERO
        for p in range(OH * OW):
            oh, ow = p // OW, p % OW
            o = dz + p * CM
            if not frozen and bias >= 0:
                db, dz_p = grads[bias + c0 * M:bias + c1 * M], gs[o + c0 * M:o + c1 * M]
                for c in range((c1 - c0) * M):
                    db[c] += dz_p[c]
            kh0, kh1, kw0, kw1 = _window(oh, ow, H, W, KH, KW, SH, SW, DH, DW, PT, PL)
            for kh in range(kh0, kh1):
                for kw in range(kw0, kw1):
                    xi = x + ((oh * SH + kh * DH - PT) * W + ow * SW + kw * DW - PL) * C
                    wk = w + (kh * KW + kw) * CM
                    if M == 1:      # as the forward: slices, so the loop vectorises
                        xs, gx, go = ws[xi + c0:xi + c1], gs[xi + c0:xi + c1], gs[o + c0:o + c1]
                        gw, pw = grads[wk + c0:wk + c1], params[wk + c0:wk + c1]
                        for c in range(c1 - c0):
                            if not frozen:
                                gw[c] += xs[c] * go[c]
                            if need_dx:
                                gx[c] += pw[c] * go[c]
                        continue
                    for c in range(c0, c1):
                        xv = ws[xi + c]
                        d = _ZERO
                        for m in range(M):
                            g = gs[o + c * M + m]
                            if not frozen:
                                grads[wk + c * M + m] += xv * g
                            d += params[wk + c * M + m] * g
                        if need_dx:
                            gs[xi + c] += d


@njit(**PART)
def depthwise_forward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, M, _ = _conv_geometry(rec, ints)
    NP, CM = OH * OW, C * M
    bias = rec[P.B_OFF]
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        z = _z_at(rec, ints, b, s, NP * CM)
        for p in range(NP):
            for c in range(CM):
                ws[z + p * CM + c] = params[bias + c] if bias >= 0 else _ZERO
        _depthwise_sample(ws, b * rec[P.X_POS] + s * H * W * C, params, rec[P.W_OFF], z, H, W, C, OH, OW, KH, KW,
                          SH, SW, DH, DW, PT, PL, M)
        if rec[P.ACT] != LINEAR:
            # the bias is in already
            _act_only(rec, ints, ws, z, b * rec[P.A_POS] + s * NP * CM, NP, CM)


@njit(cache=True, inline="always")
def _act_only(rec, ints, ws, z, a, rows, width):
    act = rec[P.ACT]
    n = rows * width
    if act == RELU:
        relu_forward(ws[z:z + n], ws[a:a + n])
    elif act == SOFTMAX:
        softmax_rows(ws, z, ws, a, rows, width)
    elif act != LINEAR:
        call(acts_pointer(_g(rec, ints, G_ACTS)), act, False, ws[z:z + n], ws[a:a + n], ws[z:z + n], ws[z:z + n])


@njit(**PART)
def depthwise_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    """Part ``t``'s block of channels: their weights', bias's and input's gradients."""
    width = _g(rec, ints, G_OH) * _g(rec, ints, G_OW) * _g(rec, ints, G_OUTC)
    dz_of = np.empty(b, dtype=np.int64)
    for s in range(b):
        dz_of[s] = _z_at(rec, ints, b, s, width)
    _depthwise_backward_block(rec, ints, params, grads, ws, gs, b, t, n, dz_of, rec[P.B_OFF])


DEPTHWISE = register_parallel("DepthwiseConv2D", depthwise_forward_part,
                              (activation_backward_part, depthwise_backward_part), on_cuda=True)


# -- SeparableConv2D ---------------------------------------------------------------
# Scratch per sample: D, the depthwise output (P x C*M), then z when kept.
# Weights: depthwise kernel at W_OFF, pointwise kernel at S_OFF, bias at B_OFF.

@njit(**PART)
def separable_forward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, M, _ = _conv_geometry(rec, ints)
    F = _g(rec, ints, G_OUTC)
    NP, CM = OH * OW, C * M
    stride = _g(rec, ints, G_ZSTRIDE)
    ab = consts[rec[P.AUX]:rec[P.AUX] + 2]
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        d = b * rec[P.Z_POS] + s * stride
        for i in range(NP * CM):
            ws[d + i] = _ZERO
        _depthwise_sample(ws, b * rec[P.X_POS] + s * H * W * C, params, rec[P.W_OFF], d, H, W, C, OH, OW, KH, KW,
                          SH, SW, DH, DW, PT, PL, M)
        z = _z_at(rec, ints, b, s, NP * F)
        gemm(False, False, NP, F, CM, ab, ws, d, CM, params, rec[P.S_OFF], F, ws, z, F)
        _bias_act(rec, ints, params, rec[P.B_OFF], ws, z, b * rec[P.A_POS] + s * NP * F, NP, F)


@njit(**PART)
def separable_pointwise_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    """Rows [k0, k1) of the pointwise kernel's gradient and a block of db (all
    samples); dD = dZ PW^T for part ``t``'s samples, into gs at D."""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, M, _ = _conv_geometry(rec, ints)
    F = _g(rec, ints, G_OUTC)
    NP, CM = OH * OW, C * M
    stride = _g(rec, ints, G_ZSTRIDE)
    ab = consts[rec[P.AUX]:rec[P.AUX] + 4]
    flags = rec[P.FLAGS]
    w_acc = (flags & P.W_ACC) != 0
    if (flags & P.FROZEN) == 0:
        k0, k1 = block_range(CM, t, n)
        for s in range(b):
            if k0 < k1:
                beta = ab[2:] if (w_acc or s > 0) else ab[:2]
                gemm(True, False, k1 - k0, F, NP, beta, ws, b * rec[P.Z_POS] + s * stride + k0, CM, gs,
                     _z_at(rec, ints, b, s, NP * F), F, grads, rec[P.S_OFF] + k0 * F, F)
        _bias_gradient(rec, ints, grads, gs, b, t, n, NP, F, w_acc)
    s0, s1 = sample_range(b, t, n)
    for s in range(s0, s1):
        gemm(False, True, NP, CM, F, ab[:2], gs, _z_at(rec, ints, b, s, NP * F), F, params, rec[P.S_OFF], F, gs,
             b * rec[P.Z_POS] + s * stride, CM)


@njit(**PART)
def separable_depthwise_backward_part(rec, ints, params, consts, grads, ws, gs, tmp, b, training, t, n):
    """Part ``t``'s block of channels of the depthwise kernel's and the input's
    gradients, from dD (in gs at D); the bias belongs to the pointwise part."""
    stride = _g(rec, ints, G_ZSTRIDE)
    dz_of = np.empty(b, dtype=np.int64)
    for s in range(b):
        dz_of[s] = b * rec[P.Z_POS] + s * stride
    _depthwise_backward_block(rec, ints, params, grads, ws, gs, b, t, n, dz_of, -1)


SEPARABLE = register_parallel("SeparableConv2D", separable_forward_part,
                              (activation_backward_part, separable_pointwise_backward_part,
                               separable_depthwise_backward_part), on_cuda=True)


def geometry(H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, F, out_channels, act, z_in_place, z_off, z_stride,
             group=1, by_taps=False):
    """The G_* integer constants of an op of this module."""
    from ..cpu.activations import elementwise
    from ..cpu.pointers import function_pointer
    acts = 0 if act in (LINEAR, RELU, SOFTMAX) else function_pointer(elementwise, ACTIVATION_SIG).address
    return (H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, F, group, int(z_in_place), z_off, z_stride, acts,
            out_channels, int(by_taps))
