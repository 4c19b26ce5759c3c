"""BatchNormalization forward, backward and moving-statistics update (Keras 3 maths).

Over the last axis: a batch of ``b`` samples of N_OUT values is ``rows = b *
N_OUT / n`` rows of ``n`` features (``n`` = the integer constant at IAUX; for
images, every pixel of every sample is a row of channels):

training    mean = sum_r x / b,  var = sum_r (x - mean)^2 / b   (biased, as ``ops.moments``)
inference   mean, var = moving_mean, moving_variance
both        scale = gamma / sqrt(var + eps),  a = x * scale + (beta - mean * scale)
            (the order of ``tf.nn.batch_normalization``; gamma = 1, beta = 0 when absent)
update      moving = moving * momentum + batch_statistic * (1 - momentum), after each training step

A frozen layer (``trainable=False``, the FROZEN flag) runs on its moving
statistics in training too and never updates them, as Keras 3 does.

Backward, with g = dL/da and xhat = (x - mean) / sqrt(var + eps):
dgamma = sum_r g * xhat,  dbeta = sum_r g, and
batch statistics  dx = gamma / sqrt(var + eps) / b * (b * g - dbeta - xhat * dgamma)
fixed statistics  dx = g * gamma / sqrt(var + eps)

Workspace: the op's Z slot is 5 * N_OUT wide, so its block at ``b * Z_POS`` holds at
least 5n floats for any b >= 1: [mean | var | 1/sqrt(var + eps) | scale |
shift] after the forward pass; the backward pass reuses the last two as
per-column sums.
Loops run over whole rows (the row-major direction) and keep per-column
accumulators in that block, so nothing is allocated per step.
"""
import numpy as np
from numba import njit

from ..program import (A_POS, ACC, AUX, B_OFF, BATCHNORM, FLAGS, FROZEN, IAUX, N_OUT, NEED_DX, S_OFF, W_ACC, W_OFF,
                       X_POS, Z_POS)
from . import KERNEL, register

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@njit(**KERNEL)
def batchnorm_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    """a = BN(x) for the ``b`` samples at X_POS; batch statistics when
    ``training`` and the layer is not frozen, moving statistics otherwise."""
    n = ints[rec[IAUX]]
    x, a, st = b * rec[X_POS], b * rec[A_POS], b * rec[Z_POS]
    b = b * rec[N_OUT] // n     # rows of n features from here on
    eps = consts[rec[AUX]]
    mean, var, inv_std = ws[st:st + n], ws[st + n:st + 2 * n], ws[st + 2 * n:st + 3 * n]
    scale, shift = ws[st + 3 * n:st + 4 * n], ws[st + 4 * n:st + 5 * n]
    if training and (rec[FLAGS] & FROZEN) == 0:
        count = np.float32(b)
        for j in range(n):
            mean[j] = _ZERO
            var[j] = _ZERO
        for r in range(b):
            xr = ws[x + r * n:x + (r + 1) * n]
            for j in range(n):
                mean[j] += xr[j]
        for j in range(n):
            mean[j] = mean[j] / count
        for r in range(b):
            xr = ws[x + r * n:x + (r + 1) * n]
            for j in range(n):
                d = xr[j] - mean[j]
                var[j] += d * d
        for j in range(n):
            var[j] = var[j] / count
    else:
        moving_mean, moving_var = params[rec[S_OFF]:rec[S_OFF] + n], params[rec[S_OFF] + n:rec[S_OFF] + 2 * n]
        for j in range(n):
            mean[j] = moving_mean[j]
            var[j] = moving_var[j]
    g_off, b_off = rec[W_OFF], rec[B_OFF]
    for j in range(n):
        s = _ONE / np.sqrt(var[j] + eps)
        inv_std[j] = s
        if g_off >= 0:
            s = s * params[g_off + j]
        scale[j] = s
        shift[j] = (params[b_off + j] if b_off >= 0 else _ZERO) - mean[j] * s
    for r in range(b):
        xr = ws[x + r * n:x + (r + 1) * n]
        ar = ws[a + r * n:a + (r + 1) * n]
        for j in range(n):
            ar[j] = xr[j] * scale[j] + shift[j]


@njit(**KERNEL)
def batchnorm_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    """Gradients of gamma and beta (unless frozen) into ``grads`` (added with
    W_ACC) and, with NEED_DX, of the input into ``gs`` (added with ACC);
    ``training`` must match the forward call."""
    n = ints[rec[IAUX]]
    flags = rec[FLAGS]
    x, a, st = b * rec[X_POS], b * rec[A_POS], b * rec[Z_POS]
    b = b * rec[N_OUT] // n
    w_acc, acc = (flags & W_ACC) != 0, (rec[ACC] & 1) != 0
    mean, inv_std = ws[st:st + n], ws[st + 2 * n:st + 3 * n]
    sum_g, sum_gx = ws[st + 3 * n:st + 4 * n], ws[st + 4 * n:st + 5 * n]
    for j in range(n):
        sum_g[j] = _ZERO
        sum_gx[j] = _ZERO
    for r in range(b):
        xr = ws[x + r * n:x + (r + 1) * n]
        gr = gs[a + r * n:a + (r + 1) * n]
        for j in range(n):
            sum_g[j] += gr[j]
            sum_gx[j] += gr[j] * (xr[j] - mean[j])
    g_off, b_off = rec[W_OFF], rec[B_OFF]
    # sum_gx so far is sum g * (x - mean); xhat carries one more 1/sqrt(var + eps).
    for j in range(n):
        sum_gx[j] = sum_gx[j] * inv_std[j]
    if (flags & FROZEN) == 0:
        if g_off >= 0:
            for j in range(n):
                grads[g_off + j] = sum_gx[j] + (grads[g_off + j] if w_acc else _ZERO)
        if b_off >= 0:
            for j in range(n):
                grads[b_off + j] = sum_g[j] + (grads[b_off + j] if w_acc else _ZERO)
    if (flags & NEED_DX) == 0:
        return
    batch_stats = training and (flags & FROZEN) == 0
    count = np.float32(b)
    inv_count = _ONE / count
    for r in range(b):
        xr = ws[x + r * n:x + (r + 1) * n]
        gr = gs[a + r * n:a + (r + 1) * n]
        dx = gs[x + r * n:x + (r + 1) * n]
        for j in range(n):
            k = inv_std[j] * params[g_off + j] if g_off >= 0 else inv_std[j]
            if batch_stats:
                xhat = (xr[j] - mean[j]) * inv_std[j]
                v = k * inv_count * (count * gr[j] - sum_g[j] - xhat * sum_gx[j])
            else:
                v = k * gr[j]
            dx[j] = v + dx[j] if acc else v


@njit(**KERNEL)
def batchnorm_update_moving(rec, ints, params, consts, grads, ws, gs, b, training):
    """moving = moving * momentum + batch * (1 - momentum) for mean and variance,
    from the statistics the last training forward pass left in the Z slot."""
    if (rec[FLAGS] & FROZEN) != 0:
        return
    n = ints[rec[IAUX]]
    st = b * rec[Z_POS]
    momentum, rest = consts[rec[AUX] + 1], consts[rec[AUX] + 2]
    moving = params[rec[S_OFF]:rec[S_OFF] + 2 * n]
    batch = ws[st:st + 2 * n]
    for j in range(2 * n):
        moving[j] = moving[j] * momentum + batch[j] * rest


BATCHNORM_KIND = register("BatchNormalization", batchnorm_forward, batchnorm_backward, batchnorm_update_moving,
                          code=BATCHNORM, shareable=True, on_cuda=True)
