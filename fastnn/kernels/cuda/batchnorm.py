"""BatchNormalization on the device: ``fastnn.kernels.cpu.batchnorm`` with one thread per feature.

The maths, the workspace layout of the op's Z slot ([mean | var |
1/sqrt(var + eps) | scale | shift], 5n wide) and the frozen-layer rules are
those of the CPU module, whose docstring writes them out. Each thread owns
a column: it sums its feature over the batch's rows in the CPU's order
(neighbouring threads read neighbouring columns of a row, so reads
coalesce), so the statistics match the CPU's float32 sums. The training
forward pass also updates the moving statistics (the CPU does it right
after the forward pass; nothing in between reads them).
"""
import math

import numpy as np
from numba import cuda

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@cuda.jit(cache=True)
def batchnorm_forward(n, b, x, a, st, g_off, b_off, s_off, eps, momentum, rest, batch_stats, params, ws):
    """a = BN(x) for the ``b x n`` block at ``ws[x:]`` into ``ws[a:]``.

    ``batch_stats``: normalize by the batch's statistics and update the
    moving ones (``moving * momentum + batch * rest``) at ``params[s_off:]``;
    else normalize by the moving statistics. ``g_off`` / ``b_off``: gamma /
    beta in ``params``, or -1."""
    count = np.float32(b)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, n, stride):
        if batch_stats:
            mean = _ZERO
            for r in range(b):
                mean += ws[x + r * n + j]
            mean = mean / count
            var = _ZERO
            for r in range(b):
                d = ws[x + r * n + j] - mean
                var += d * d
            var = var / count
        else:
            mean = params[s_off + j]
            var = params[s_off + n + j]
        s = _ONE / np.float32(math.sqrt(var + eps))
        ws[st + j] = mean
        ws[st + n + j] = var
        ws[st + 2 * n + j] = s
        if g_off >= 0:
            s = s * params[g_off + j]
        shift = (params[b_off + j] if b_off >= 0 else _ZERO) - mean * s
        ws[st + 3 * n + j] = s
        ws[st + 4 * n + j] = shift
        for r in range(b):
            ws[a + r * n + j] = ws[x + r * n + j] * s + shift
        if batch_stats:
            params[s_off + j] = params[s_off + j] * momentum + mean * rest
            params[s_off + n + j] = params[s_off + n + j] * momentum + var * rest


@cuda.jit(cache=True)
def batchnorm_backward(n, b, x, a, st, g_off, b_off, want_params, need_dx, batch_stats, params, grads, ws, gs):
    """From g = gs[a:]: with ``want_params`` dgamma = sum_r g * xhat and
    dbeta = sum_r g into ``grads``; with ``need_dx`` the input gradient into
    ``gs[x:]`` (through the batch statistics when ``batch_stats``, as the
    forward pass used them)."""
    count = np.float32(b)
    inv_count = _ONE / count
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, n, stride):
        mean = ws[st + j]
        inv_std = ws[st + 2 * n + j]
        sum_g = _ZERO
        sum_gx = _ZERO
        for r in range(b):
            g = gs[a + r * n + j]
            sum_g += g
            sum_gx += g * (ws[x + r * n + j] - mean)
        sum_gx = sum_gx * inv_std
        if want_params:
            if g_off >= 0:
                grads[g_off + j] = sum_gx
            if b_off >= 0:
                grads[b_off + j] = sum_g
        if need_dx:
            k = inv_std * params[g_off + j] if g_off >= 0 else inv_std
            for r in range(b):
                g = gs[a + r * n + j]
                if batch_stats:
                    xhat = (ws[x + r * n + j] - mean) * inv_std
                    gs[x + r * n + j] = k * inv_count * (count * g - sum_g - xhat * sum_gx)
                else:
                    gs[x + r * n + j] = k * g
