"""Elementwise and row-wise kernels: the non-GEMM ops of forward and backward,
bias-gradient sums, dropout, and batch gathering.

Every kernel is a grid-stride loop, so any grid size is correct; the engine
launches them with ``launch.blocks_for(work)`` blocks. Activations use the
CPU module's scalar functions (compiled for the GPU), so codes and formulas
are shared; the op kinds and slots are those of ``fastnn.kernels.program``.
"""
import math

import numpy as np
from numba import cuda
from numba.cuda.random import xoroshiro128p_uniform_float32

from ..cpu.activations import act_derivative, act_value
from ..program import ACTIVATION, DENSE, DROPOUT, LEAKY_RELU, NORMALIZE, RESCALE

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_NORM_EPS = np.float32(1e-7)


@cuda.jit(cache=True)
def op_forward(kind, act, n, rows, x, a, ws, params, mean_off, var_off, consts, aux):
    """a = f(x) over a ``rows x n`` block of ``ws``: ACTIVATION (``act``, not
    softmax; LINEAR copies, which is also Dropout at inference), NORMALIZE
    ((x - mean) / max(sqrt(var), 1e-7), mean/var in ``params``), RESCALE
    (x * consts[aux] + consts[aux + 1]) or LEAKY_RELU (x if x > 0 else
    consts[aux] * x)."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, rows * n, stride):
        v = ws[x + e]
        if kind == NORMALIZE:
            j = e % n
            v = (v - params[mean_off + j]) / max(math.sqrt(params[var_off + j]), _NORM_EPS)
        elif kind == RESCALE:
            v = v * consts[aux] + consts[aux + 1]
        elif kind == LEAKY_RELU:
            if v <= _ZERO:
                v = consts[aux] * v
        else:
            v = act_value(act, v)
        ws[a + e] = v


@cuda.jit(cache=True)
def op_backward(kind, act, n, rows, x, z, a, ws, gs, params, var_off, consts, aux):
    """One backward elementwise step over a ``rows x n`` block.

    DENSE / ACTIVATION: gs[z] = gs[a] * act'(ws[z], ws[a]) (not softmax).
    NORMALIZE: gs[x] = gs[a] / max(sqrt(var), 1e-7); RESCALE: gs[x] = gs[a] * scale;
    DROPOUT: gs[x] = gs[a] * mask, the mask kept in ws at ``z``;
    LEAKY_RELU: gs[x] = gs[a] * (1 if x > 0 else consts[aux])."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, rows * n, stride):
        g = gs[a + e]
        if kind == DENSE or kind == ACTIVATION:
            gs[z + e] = g * act_derivative(act, ws[z + e], ws[a + e])
        else:
            if kind == NORMALIZE:
                g = g / max(math.sqrt(params[var_off + e % n]), _NORM_EPS)
            elif kind == RESCALE:
                g = g * consts[aux]
            elif kind == DROPOUT:
                g = g * ws[z + e]
            elif kind == LEAKY_RELU:
                if ws[x + e] <= _ZERO:
                    g = g * consts[aux]
            gs[x + e] = g


@cuda.jit(cache=True)
def softmax_rows(z, z_off, a, a_off, rows, width):
    """Row-wise softmax of the ``rows x width`` block at ``z[z_off:]`` into
    ``a[a_off:]``, one thread per row (max-shifted, as the CPU kernel)."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, rows, stride):
        zi = z_off + r * width
        ai = a_off + r * width
        m = z[zi]
        for j in range(1, width):
            m = max(m, z[zi + j])
        s = _ZERO
        for j in range(width):
            e = math.exp(z[zi + j] - m)
            a[ai + j] = e
            s += e
        inv = _ONE / s
        for j in range(width):
            a[ai + j] *= inv


@cuda.jit(cache=True)
def softmax_rows_backward(a, ga, a_off, gz, z_off, rows, width):
    """gz = a * (ga - sum(ga * a)) per row: the softmax Jacobian-vector product."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, rows, stride):
        i = a_off + r * width
        o = z_off + r * width
        dot = _ZERO
        for j in range(width):
            dot += ga[i + j] * a[i + j]
        for j in range(width):
            gz[o + j] = a[i + j] * (ga[i + j] - dot)


@cuda.jit(cache=True)
def column_sums(src, s_off, rows, cols, dst, d_off):
    """dst[d_off + j] = sum over rows of the ``rows x cols`` block at
    ``src[s_off:]`` (the bias gradient); one thread per column, so the
    threads of a warp read one row's neighbouring columns together."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, cols, stride):
        s = _ZERO
        for r in range(rows):
            s += src[s_off + r * cols + j]
        dst[d_off + j] = s


@cuda.jit(cache=True)
def dropout(states, rate, count, x, m, a, ws):
    """Training dropout over ``count`` values: mask = 1/(1-rate) with
    probability 1-rate else 0, kept in ws[m:], and a = x * mask.

    Thread t draws from xoroshiro state ``t``: launch at most
    ``len(states)`` threads in all."""
    t = cuda.grid(1)
    stride = cuda.gridsize(1)
    if t >= states.shape[0]:
        return
    keep_scale = _ONE / (_ONE - rate)
    for e in range(t, count, stride):
        mk = keep_scale if xoroshiro128p_uniform_float32(states, t) >= rate else _ZERO
        ws[m + e] = mk
        ws[a + e] = ws[x + e] * mk


@cuda.jit(cache=True)
def gather(X, f, ids, pos, b, ws):
    """Copies rows ids[pos:pos+b] of X (flat N x f) into ws[:b*f]: the batch,
    when the first op is not a Dense layer (which reads X through ``ids``
    itself). The loss kernel reads targets and weights through ``ids`` too."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, b * f, stride):
        r = e // f
        ws[e] = X[ids[pos + r] * f + e - r * f]


@cuda.jit(cache=True)
def copy(src, s_off, dst, d_off, count):
    """dst[d_off:d_off+count] = src[s_off:s_off+count] (outputs of a batch into the predictions)."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, count, stride):
        dst[d_off + e] = src[s_off + e]


@cuda.jit(device=True)
def block_sum(partial, tid, threads):
    """Tree sum of ``partial[:threads]`` (shared memory, one entry per thread
    of the block, ``threads`` a power of two) into ``partial[0]``. Every
    thread of the block must call it."""
    cuda.syncthreads()
    half = threads // 2
    while half > 0:
        if tid < half:
            partial[tid] += partial[tid + half]
        cuda.syncthreads()
        half //= 2
