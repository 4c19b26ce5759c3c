"""DepthwiseConv2D and SeparableConv2D on the device (the Depthwise and Separable kinds of ``kinds.conv``).

Layout and maths are the CPU kinds' (``kinds.conv``'s docstring): a sample is an ``H x W x C`` map,
the depthwise kernel ``(KH, KW, C, M)`` with output channel ``c * M + m``, its output ``OH x OW x
C*M``; SeparableConv2D is that depthwise convolution without bias, then the ``(C*M) x F`` pointwise
kernel and the bias. Three kernels serve both kinds:

- ``depthwise_forward``: one thread per output value, bias first, then the taps in (kh, kw) order
  as the CPU adds them, and the activation (softmax, over each pixel's channels, gets a launch of
  its own);
- ``depthwise_input_gradient``: one thread per input value, which gathers what the output pixels
  reading it give back, in the CPU's order of pixels: no atomics;
- ``depthwise_weight_gradient``: one block per weight (its bias entries as extra weights whose
  input is 1), whose threads split the batch's pixels and sum in shared memory: no two threads
  write one weight.

SeparableConv2D's pointwise part is a 1x1 convolution, so it takes Conv's GEMM path
(``conv.product_forward`` / ``product_backward``) on the depthwise output D. On the device the op's
scratch in the workspace holds D of the ``b`` samples, then their z (when kept), each a block, so
that one GEMM covers the batch (the CPU keeps D and z of each sample side by side).
"""
import numpy as np
from numba import cuda, float32

from ..cpu.activations import LINEAR, SOFTMAX, act_value
from ..kinds import conv as K
from ..kinds.parallel import HEADER
from ..program import A_POS, ACT, B_OFF, FLAGS, FROZEN, IAUX, KIND, NEED_DX, S_OFF, W_OFF, X_POS, Z_POS
from .conv import activation_backward, product_backward, product_forward, window
from .elementwise import block_sum, softmax_rows
from .kinds import register
from .launch import MAX_BLOCKS, THREADS, configure, planned
from .maps import pixel, reader

_ZERO = np.float32(0.0)


@cuda.jit(cache=True)
def depthwise_forward(ints, g, ws, x, params, w, bias, act, z, a, b):
    """z (ws[z:], ``b`` maps of OH x OW x C*M) = depthwise(maps at ws[x:], kernel at params[w:]) + bias
    (params[bias:]; < 0: none) and a = act(z) at ws[a:] (LINEAR, SOFTMAX: not applied); geometry at ints[g:]."""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = window(ints, g)
    M = ints[g + K.G_F]
    CM = C * M
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * OH * OW * CM, stride):
        s, oh, ow, o = pixel(e, OH, OW, CM)
        c = o // M
        v = params[bias + o] if bias >= 0 else _ZERO
        for kh in range(KH):
            ih = oh * SH + kh * DH - PT
            if ih >= 0 and ih < H:
                for kw in range(KW):
                    iw = ow * SW + kw * DW - PL
                    if iw >= 0 and iw < W:
                        v += ws[x + ((s * H + ih) * W + iw) * C + c] * params[w + (kh * KW + kw) * CM + o]
        ws[z + e] = v
        if act != LINEAR and act != SOFTMAX:
            ws[a + e] = act_value(act, v)


@cuda.jit(cache=True)
def depthwise_input_gradient(ints, g, gs, dz, params, w, x, b):
    """gs[x:] (``b`` maps) = dX from dZ at gs[dz:] (OH x OW x C*M a map): input (ih, iw, c) gathers
    ``sum_m W[kh, kw, c, m] * dZ[oh, ow, c*M + m]`` from each output pixel whose tap (kh, kw) reads it,
    in the order of those pixels (the CPU's order)."""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = window(ints, g)
    M = ints[g + K.G_F]
    CM = C * M
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * H * W * C, stride):
        s, ih, iw, c = pixel(e, H, W, C)
        v = _ZERO
        for kh in range(KH - 1, -1, -1):        # later kernel rows read earlier output rows
            oh = reader(ih, kh, PT, DH, SH, OH)
            if oh < 0:
                continue
            for kw in range(KW - 1, -1, -1):
                ow = reader(iw, kw, PL, DW, SW, OW)
                if ow < 0:
                    continue
                o = dz + ((s * OH + oh) * OW + ow) * CM + c * M
                wk = w + (kh * KW + kw) * CM + c * M
                d = _ZERO
                for m in range(M):
                    d += params[wk + m] * gs[o + m]
                v += d
        gs[x + e] = v


@cuda.jit(cache=True)
def depthwise_weight_gradient(ints, g, ws, x, gs, dz, grads, w, bias, b):
    """grads[w:] (KH x KW x C*M) = the sum over the ``b`` samples and the output pixels of the input
    under each tap times dZ (at gs[dz:]); with ``bias`` >= 0 also grads[bias:] (C*M) = the sum of dZ.
    Launch with ``THREADS`` threads a block and any number of blocks: block ``r`` sums weight ``r``
    (then ``r`` + the grid, ...), its threads splitting the b * OH * OW terms."""
    H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = window(ints, g)
    M = ints[g + K.G_F]
    CM = C * M
    taps = KH * KW
    n_weights = taps * CM + (CM if bias >= 0 else 0)       # the bias entries as a last tap reading ones
    n_terms = b * OH * OW
    partial = cuda.shared.array(THREADS, float32)
    tid = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, n_weights, cuda.gridDim.x):
        q, o = r // CM, r % CM
        kh, kw, c = q // KW, q % KW, o // M
        total = _ZERO
        for t in range(tid, n_terms, THREADS):
            gz = gs[dz + t * CM + o]
            if q == taps:
                total += gz
            else:
                s, p = t // (OH * OW), t % (OH * OW)
                ih = (p // OW) * SH + kh * DH - PT
                iw = (p % OW) * SW + kw * DW - PL
                if ih >= 0 and ih < H and iw >= 0 and iw < W:
                    total += ws[x + ((s * H + ih) * W + iw) * C + c] * gz
        partial[tid] = total
        block_sum(partial, tid, THREADS)
        if tid == 0:        # only thread 0 reads partial[0]: the next weight may start filling the rest
            grads[w + r if q < taps else bias + o] = partial[0]


class _Op:
    """What the launches of Depthwise or Separable op ``i`` need, read from the op table once."""

    def __init__(self, session, i, b):
        rec = session.prog[i]
        self.g = int(rec[IAUX]) + HEADER
        geo = [int(v) for v in session.ints_host[self.g:self.g + K.N_GEOMETRY]]
        H, W, C, OH, OW, KH, KW = geo[:7]
        self.rows, self.in_size, self.taps, self.CM = b * OH * OW, H * W * C, KH * KW, C * geo[K.G_F]
        self.F = geo[K.G_OUTC]          # output channels (Depthwise: C * M)
        self.act, self.flags = int(rec[ACT]), int(rec[FLAGS])
        self.w, self.bias, self.pointwise = int(rec[W_OFF]), int(rec[B_OFF]), int(rec[S_OFF])
        self.x, self.a = b * int(rec[X_POS]), b * int(rec[A_POS])
        # Separable: D of the batch at the scratch's start, then z when kept. Depthwise: z in the scratch
        # when kept. Kept unless computed in place in the output (linear, ReLU, softmax).
        self.d = b * int(rec[Z_POS])
        kept = self.d + self.rows * self.CM if int(rec[KIND]) == K.SEPARABLE else self.d
        self.z = self.a if geo[K.G_ZIN] else kept


def _forward(session, op, b, bias, act, z, a):
    return planned(depthwise_forward, op.rows * op.CM, session.ints, op.g, session.ws, op.x,
                   session.params, op.w, bias, act, z, a, b)


def _weight_gradient(session, op, b, dz, bias):
    """The depthwise kernel's gradient (and the bias's, ``bias`` >= 0) from dZ at gs[dz:]."""
    n_weights = op.taps * op.CM + (op.CM if bias >= 0 else 0)
    return (configure(depthwise_weight_gradient, min(MAX_BLOCKS, n_weights), THREADS),
            (session.ints, op.g, session.ws, op.x, session.gs, dz, session.grads, op.w, bias, b))


def _input_gradient(session, op, b, dz):
    return planned(depthwise_input_gradient, b * op.in_size, session.ints, op.g, session.gs, dz, session.params,
                   op.w, op.x, b)


def depthwise_forward_plan(session, i, b, training):
    op = _Op(session, i, b)
    launches = [_forward(session, op, b, op.bias, op.act, op.z, op.a)]
    if op.act == SOFTMAX:
        launches.append(planned(softmax_rows, op.rows, session.ws, op.z, session.ws, op.a, op.rows, op.CM))
    return launches


def depthwise_backward_plan(session, i, b, training):
    op = _Op(session, i, b)
    frozen, need_dx = bool(op.flags & FROZEN), bool(op.flags & NEED_DX)
    if frozen and not need_dx:
        return []       # a frozen first layer: no gradient wanted
    launches = activation_backward(session, op.act, op.rows, op.CM, op.z, op.a)
    if not frozen:
        launches.append(_weight_gradient(session, op, b, op.z, op.bias))
    if need_dx:
        launches.append(_input_gradient(session, op, b, op.z))
    return launches


def separable_forward_plan(session, i, b, training):
    op = _Op(session, i, b)
    return [_forward(session, op, b, -1, LINEAR, op.d, op.d),
            *product_forward(session, op.rows, op.CM, op.F, session.ws, op.d, op.pointwise, op.bias, op.act, op.z,
                             op.a)]


def separable_backward_plan(session, i, b, training):
    """dZ, the pointwise kernel's and the bias's gradients and dD = dZ PW^T (into gs at D) by Conv's
    GEMM path, then the depthwise kernel's and the input's gradients from dD."""
    op = _Op(session, i, b)
    frozen, need_dx = bool(op.flags & FROZEN), bool(op.flags & NEED_DX)
    if frozen and not need_dx:
        return []
    launches = activation_backward(session, op.act, op.rows, op.F, op.z, op.a)
    launches += product_backward(session, op.rows, op.CM, op.F, session.ws, op.d, op.pointwise, op.bias, op.z,
                                 frozen, session.gs, op.d)
    if not frozen:
        launches.append(_weight_gradient(session, op, b, op.d, -1))
    if need_dx:
        launches.append(_input_gradient(session, op, b, op.d))
    return launches


register(K.DEPTHWISE, depthwise_forward_plan, depthwise_backward_plan)
register(K.SEPARABLE, separable_forward_plan, separable_backward_plan)
