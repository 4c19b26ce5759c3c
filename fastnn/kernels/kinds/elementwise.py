"""Elementwise kinds: Activation, LeakyReLU, Normalization, Rescaling, Dropout.

Each runs on the ``b * N_OUT`` values of its one input; the backward pass
writes (or with ACC adds) ``gs[x] = gs[a] * d a / d x``.
"""
import numpy as np
from numba import njit

from .. import program as P
from ..cpu.activations import SOFTMAX, act_backward, act_forward, softmax_rows, softmax_rows_backward
from ..cpu.dropout_masks import draw_mask
from . import KERNEL, put, register

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_NORM_EPS = np.float32(1e-7)


@njit(**KERNEL)
def activation_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    """a = act(x); softmax over the last axis, of size ints[IAUX]."""
    n = rec[P.N_OUT]
    x, a = b * rec[P.X_POS], b * rec[P.A_POS]
    if rec[P.ACT] == SOFTMAX:
        last = ints[rec[P.IAUX]]
        softmax_rows(ws, x, ws, a, b * n // last, last)
    else:
        act_forward(rec[P.ACT], ws[x:x + b * n], ws[a:a + b * n])


@njit(**KERNEL)
def activation_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    """The serial backward pass: softmax, and any activation whose input
    feeds other ops too (the engine runs the others in its parallel blocks).
    Computed in place in gs[a] (dead afterwards), then written or added to gs[x]."""
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    n, size = rec[P.N_OUT], b * rec[P.N_OUT]
    x, a = b * rec[P.X_POS], b * rec[P.A_POS]
    acc = (rec[P.ACC] & 1) != 0
    dst = a if acc else x
    if rec[P.ACT] == SOFTMAX:
        last = ints[rec[P.IAUX]]
        softmax_rows_backward(ws, gs, a, gs, dst, b * n // last, last)
    else:
        act_backward(rec[P.ACT], ws[x:x + size], ws[a:a + size], gs[a:a + size], gs[dst:dst + size])
    if acc:
        d, g = gs[x:x + size], gs[a:a + size]
        for k in range(size):
            d[k] += g[k]


ACTIVATION = register("Activation", activation_forward, activation_backward, code=P.ACTIVATION, shareable=True,
                      on_cuda=True)


# The elementwise loops below run over slices indexed by the range variable: computed indices into
# ws and gs keep Numba's negative-index wraparound, and LLVM then leaves the loop scalar.

@njit(**KERNEL)
def leaky_relu_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    size, slope = b * rec[P.N_OUT], consts[rec[P.AUX]]
    xs, out = ws[b * rec[P.X_POS]:b * rec[P.X_POS] + size], ws[b * rec[P.A_POS]:b * rec[P.A_POS] + size]
    for k in range(size):
        v = xs[k]
        out[k] = v if v > _ZERO else slope * v


@njit(**KERNEL)
def leaky_relu_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    x, a, slope, acc = b * rec[P.X_POS], b * rec[P.A_POS], consts[rec[P.AUX]], (rec[P.ACC] & 1) != 0
    size = b * rec[P.N_OUT]
    xs, g_out, d = ws[x:x + size], gs[a:a + size], gs[x:x + size]
    for k in range(size):
        v = g_out[k] if xs[k] > _ZERO else g_out[k] * slope
        d[k] = d[k] + v if acc else v


LEAKY_RELU = register("LeakyReLU", leaky_relu_forward, leaky_relu_backward, code=P.LEAKY_RELU, shareable=True,
                      on_cuda=True)


@njit(**KERNEL)
def normalize_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    """(x - mean) / max(sqrt(var), 1e-7) over the last axis (mean at W_OFF, var at B_OFF, each of size IAUX[0])."""
    x, a, n = b * rec[P.X_POS], b * rec[P.A_POS], rec[P.N_OUT]
    mean, var, width = rec[P.W_OFF], rec[P.B_OFF], ints[rec[P.IAUX]]
    for k in range(b * n):
        j = k % width
        ws[a + k] = (ws[x + k] - params[mean + j]) / max(np.sqrt(params[var + j]), _NORM_EPS)


@njit(**KERNEL)
def normalize_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    x, a, n, acc = b * rec[P.X_POS], b * rec[P.A_POS], rec[P.N_OUT], (rec[P.ACC] & 1) != 0
    var, width = rec[P.B_OFF], ints[rec[P.IAUX]]
    for k in range(b * n):
        put(gs, x + k, gs[a + k] / max(np.sqrt(params[var + k % width]), _NORM_EPS), acc)


NORMALIZE = register("Normalization", normalize_forward, normalize_backward, code=P.NORMALIZE, shareable=True,
                     on_cuda=True)


@njit(**KERNEL)
def rescale_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    size, scale, offset = b * rec[P.N_OUT], consts[rec[P.AUX]], consts[rec[P.AUX] + 1]
    xs, out = ws[b * rec[P.X_POS]:b * rec[P.X_POS] + size], ws[b * rec[P.A_POS]:b * rec[P.A_POS] + size]
    for k in range(size):
        out[k] = xs[k] * scale + offset


@njit(**KERNEL)
def rescale_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    x, a, scale, acc = b * rec[P.X_POS], b * rec[P.A_POS], consts[rec[P.AUX]], (rec[P.ACC] & 1) != 0
    size = b * rec[P.N_OUT]
    g_out, d = gs[a:a + size], gs[x:x + size]
    for k in range(size):
        d[k] = d[k] + g_out[k] * scale if acc else g_out[k] * scale


RESCALE = register("Rescaling", rescale_forward, rescale_backward, code=P.RESCALE, shareable=True, on_cuda=True)


@njit(**KERNEL)
def dropout_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    """Training: a = x * mask, the mask (0 or 1/(1-rate)) kept at Z_POS for the backward pass."""
    x, z, a, size = b * rec[P.X_POS], b * rec[P.Z_POS], b * rec[P.A_POS], b * rec[P.N_OUT]
    xs, out = ws[x:x + size], ws[a:a + size]
    if training:
        mask = ws[z:z + size]
        draw_mask(mask, consts[rec[P.AUX]])
        for k in range(size):
            out[k] = xs[k] * mask[k]
    else:
        for k in range(size):
            out[k] = xs[k]


@njit(**KERNEL)
def dropout_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    x, z, a, acc = b * rec[P.X_POS], b * rec[P.Z_POS], b * rec[P.A_POS], (rec[P.ACC] & 1) != 0
    size = b * rec[P.N_OUT]
    g_out, mask, d = gs[a:a + size], ws[z:z + size], gs[x:x + size]
    for k in range(size):
        v = g_out[k] * mask[k] if training else g_out[k]
        d[k] = d[k] + v if acc else v


DROPOUT = register("Dropout", dropout_forward, dropout_backward, code=P.DROPOUT, shareable=True, on_cuda=True)
