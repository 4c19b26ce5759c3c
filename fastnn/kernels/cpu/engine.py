"""Forward, backward and the compiled training / inference loops.

Thread ownership: Numba's pool owns the cores and BLAS runs single-threaded
inside it (the Python side pins BLAS to one thread while these loops run),
because two spinning pools on two cores slow each other down several-fold.
Each matrix product is split into ``n_parts`` column blocks, one per thread,
and each thread runs single-threaded SGEMM on its block; elementwise work
on a block (bias, activation) is done by the thread that just computed it,
while the block is in its cache.
"""
import numpy as np
from numba import njit, prange

from ..program import (A_POS, ACT, ACTIVATION, AUX, B_OFF, DENSE, DROPOUT, FLAGS, KIND, LOSS_FUSED, N_IN, N_OUT,
                       NEED_DX, NORMALIZE, ON_LOGITS, RESCALE, W_OFF, X_POS, Z_POS)
from .activations import LINEAR, SOFTMAX, act_derivative, act_value, softmax_rows, softmax_rows_backward
from .blas import gemm
from .losses import loss_and_grad, metric_sums
from .optimizers import apply_update

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_NORM_EPS = np.float32(1e-7)


@njit(cache=True, inline="always")
def _block(n, n_parts, t):
    """Columns [lo, hi) of part ``t`` when ``n`` columns are split in parts.

    Blocks are multiples of 16 columns so threads never share a cache line
    of a row and tiny layers stay on one thread."""
    size = (n + n_parts - 1) // n_parts
    size = ((size + 15) // 16) * 16
    lo = t * size
    return min(lo, n), min(lo + size, n)


@njit(cache=True, parallel=True)
def _dense_forward(rec, params, ws, b, n_parts, ab):
    n_in, n_out, act = rec[N_IN], rec[N_OUT], rec[ACT]
    x, z, a = b * rec[X_POS], b * rec[Z_POS], b * rec[A_POS]
    w, bias = rec[W_OFF], rec[B_OFF]
    for t in prange(n_parts):
        c0, c1 = _block(n_out, n_parts, t)
        if c0 < c1:
            gemm(False, False, b, c1 - c0, n_in, ab, ws, x, n_in, params, w + c0, n_out, ws, z + c0, n_out)
            for r in range(b):
                zr = z + r * n_out
                ar = a + r * n_out
                for j in range(c0, c1):
                    v = ws[zr + j]
                    if bias >= 0:
                        v += params[bias + j]
                        ws[zr + j] = v
                    if act != SOFTMAX:
                        ws[ar + j] = act_value(act, v)
    if act == SOFTMAX:
        softmax_rows(ws, z, ws, a, b, n_out)


@njit(cache=True, parallel=True)
def _elementwise_forward(rec, params, consts, ws, b, n_parts):
    """Activation, Normalize and Rescale ops: a = f(x) elementwise."""
    kind, n, act = rec[KIND], rec[N_OUT], rec[ACT]
    x, a = b * rec[X_POS], b * rec[A_POS]
    if kind == ACTIVATION and act == SOFTMAX:
        softmax_rows(ws, x, ws, a, b, n)
        return
    for t in prange(n_parts):
        c0, c1 = _block(n, n_parts, t)
        for r in range(b):
            for j in range(c0, c1):
                v = ws[x + r * n + j]
                if kind == ACTIVATION:
                    v = act_value(act, v)
                elif kind == NORMALIZE:
                    v = (v - params[rec[W_OFF] + j]) / max(np.sqrt(params[rec[B_OFF] + j]), _NORM_EPS)
                else:  # RESCALE
                    v = v * consts[rec[AUX]] + consts[rec[AUX] + 1]
                ws[a + r * n + j] = v


@njit(cache=True)
def _dropout(rec, consts, ws, b, training):
    """Training: draws a keep mask scaled by 1/(1-rate) into ws[Z], a = x * mask.
    Inference: identity. Masks come from Numba's generator (``seed_kernels``)."""
    n = rec[N_OUT]
    x, m, a = b * rec[X_POS], b * rec[Z_POS], b * rec[A_POS]
    if not training:
        ws[a:a + b * n] = ws[x:x + b * n]
        return
    rate = consts[rec[AUX]]
    keep_scale = _ONE / (_ONE - rate)
    for k in range(b * n):
        mk = keep_scale if np.random.random() >= rate else _ZERO
        ws[m + k] = mk
        ws[a + k] = ws[x + k] * mk


@njit(cache=True)
def forward(prog, params, consts, ws, b, n_parts, ab, training):
    """Runs every op of ``prog`` on the ``b`` rows already gathered into ws."""
    for i in range(prog.shape[0]):
        rec = prog[i]
        kind = rec[KIND]
        if kind == DENSE:
            _dense_forward(rec, params, ws, b, n_parts, ab)
        elif kind == DROPOUT:
            _dropout(rec, consts, ws, b, training)
        else:
            _elementwise_forward(rec, params, consts, ws, b, n_parts)


@njit(cache=True)
def seed_kernels(seed):
    """Seeds the generator compiled code draws from (dropout masks)."""
    np.random.seed(seed)


@njit(cache=True, parallel=True)
def _activation_backward(rec, ws, gs, b, n_parts):
    """gs[Z] = gs[A] * act'(z): the gradient through this op's activation."""
    n, act = rec[N_OUT], rec[ACT]
    z, a = b * rec[Z_POS], b * rec[A_POS]
    if act == SOFTMAX:
        softmax_rows_backward(ws, gs, a, gs, z, b, n)
        return
    for t in prange(n_parts):
        c0, c1 = _block(n, n_parts, t)
        for r in range(b):
            for j in range(c0, c1):
                i = r * n + j
                gs[z + i] = gs[a + i] * act_derivative(act, ws[z + i], ws[a + i])


@njit(cache=True, parallel=True)
def _dense_backward(rec, params, grads, ws, gs, b, n_parts, ab):
    """dX = dZ W^T (if NEED_DX), dW = X^T dZ, db = sum_rows dZ.

    Thread t owns rows [r0, r1) of W: it reads them for dX's columns
    [r0, r1) and writes the same rows of dW, so no two threads touch
    the same cache lines."""
    n_in, n_out = rec[N_IN], rec[N_OUT]
    x, z = b * rec[X_POS], b * rec[Z_POS]
    w, bias = rec[W_OFF], rec[B_OFF]
    need_dx = (rec[FLAGS] & NEED_DX) != 0
    for t in prange(n_parts):
        r0, r1 = _block(n_in, n_parts, t)
        if r0 < r1:
            if need_dx:
                gemm(False, True, b, r1 - r0, n_out, ab, gs, z, n_out, params, w + r0 * n_out, n_out,
                     gs, x + r0, n_in)
            gemm(True, False, r1 - r0, n_out, b, ab, ws, x + r0, n_in, gs, z, n_out,
                 grads, w + r0 * n_out, n_out)
        if bias >= 0:
            c0, c1 = _block(n_out, n_parts, t)
            for j in range(c0, c1):
                grads[bias + j] = _ZERO
            for r in range(b):
                for j in range(c0, c1):
                    grads[bias + j] += gs[z + r * n_out + j]


@njit(cache=True)
def backward(prog, params, consts, grads, ws, gs, b, n_parts, ab):
    """Back-propagates from the output gradient already in ``gs``."""
    for i in range(prog.shape[0] - 1, -1, -1):
        rec = prog[i]
        kind = rec[KIND]
        flags = rec[FLAGS]
        if kind == DENSE or kind == ACTIVATION:
            if rec[ACT] != LINEAR and (flags & LOSS_FUSED) == 0 and \
                    (kind == DENSE or (flags & NEED_DX) != 0):
                _activation_backward(rec, ws, gs, b, n_parts)
            if kind == DENSE:
                _dense_backward(rec, params, grads, ws, gs, b, n_parts, ab)
        elif (flags & NEED_DX) != 0:
            n = rec[N_OUT]
            x, a, zp = b * rec[X_POS], b * rec[A_POS], b * rec[Z_POS]
            for r in range(b):
                for j in range(n):
                    k = r * n + j
                    gk = gs[a + k]
                    if kind == NORMALIZE:
                        gk = gk / max(np.sqrt(params[rec[B_OFF] + j]), _NORM_EPS)
                    elif kind == RESCALE:
                        gk = gk * consts[rec[AUX]]
                    elif kind == DROPOUT:
                        gk = gk * ws[zp + k]
                    gs[x + k] = gk


@njit(cache=True)
def _gather(X, ids, pos, b, dst, dst_off):
    """Copies rows ids[pos:pos+b] of 2-D X into dst[dst_off:] (b x features)."""
    f = X.shape[1]
    for r in range(b):
        src = X[ids[pos + r]]
        o = dst_off + r * f
        for j in range(f):
            dst[o + j] = src[j]


@njit(cache=True)
def _gather_labels(Yi, ids, pos, b, dst):
    for r in range(b):
        dst[r] = Yi[ids[pos + r]]


@njit(cache=True)
def _copy_rows(X, pos, b, dst):
    """Copies rows [pos, pos+b) of 2-D X into the start of flat dst."""
    f = X.shape[1]
    for r in range(b):
        for j in range(f):
            dst[r * f + j] = X[pos + r, j]


@njit(cache=True)
def train_steps(prog, params, consts, grads, slot1, slot2, n_trainable, opt, hp, step,
                X, Yf, Yi, ids, start, stop, batch, ws, gs, yb, yl,
                loss_code, loss_mode, metric_codes, sums, n_parts, ab):
    """Trains on rows ids[start:stop] in batches of ``batch``; returns the step count.

    Arrays: ``X`` (N, features) float32; ``Yf`` (N, outputs) float32 dense
    targets or ``Yi`` (N,) int64 labels (the other is empty); ``ids`` int64
    row order. ``ws``/``gs`` workspaces sized for ``batch`` rows, ``yb``/``yl``
    target blocks. ``sums`` float64 accumulates [loss, samples, metrics...].
    ``step`` is the optimizer's iteration count before this call.
    """
    last = prog[prog.shape[0] - 1]
    n_out = last[N_OUT]
    fused = (last[FLAGS] & LOSS_FUSED) != 0
    sparse = Yi.shape[0] > 0
    pos = start
    while pos < stop:
        b = min(batch, stop - pos)
        _gather(X, ids, pos, b, ws, 0)
        if sparse:
            _gather_labels(Yi, ids, pos, b, yl)
        else:
            _gather(Yf, ids, pos, b, yb, 0)
        forward(prog, params, consts, ws, b, n_parts, ab, True)
        src = b * (last[Z_POS] if fused else last[A_POS])
        sums[0] += loss_and_grad(loss_code, ON_LOGITS if fused else loss_mode, ws, src, gs, src, yb, yl,
                                 b, n_out, True)
        sums[1] += b
        metric_sums(metric_codes, sums[2:], ws, b * last[A_POS], yb, yl, b, n_out)
        backward(prog, params, consts, grads, ws, gs, b, n_parts, ab)
        step += 1
        apply_update(opt, hp, step, params, grads, slot1, slot2, n_trainable, n_parts)
        pos += b
    return step


@njit(cache=True)
def infer_steps(prog, params, consts, X, Yf, Yi, start, stop, batch, ws, yb, yl,
                loss_code, loss_mode, metric_codes, sums, out, n_parts, ab):
    """Forward pass on rows [start, stop) of X in order.

    With ``loss_code >= 0`` adds [loss, samples, metrics...] to ``sums`` as
    ``train_steps`` does; with ``out`` non-empty copies the outputs of
    rows [start, stop) into ``out[start:stop]`` (2-D float32)."""
    last = prog[prog.shape[0] - 1]
    n_out = last[N_OUT]
    fused = (last[FLAGS] & LOSS_FUSED) != 0
    sparse = Yi.shape[0] > 0
    pos = start
    while pos < stop:
        b = min(batch, stop - pos)
        _copy_rows(X, pos, b, ws)
        forward(prog, params, consts, ws, b, n_parts, ab, False)
        a = b * last[A_POS]
        if loss_code >= 0:
            if sparse:
                yl[:b] = Yi[pos:pos + b]
            else:
                _copy_rows(Yf, pos, b, yb)
            src = b * (last[Z_POS] if fused else last[A_POS])
            sums[0] += loss_and_grad(loss_code, ON_LOGITS if fused else loss_mode, ws, src, ws, src, yb, yl,
                                     b, n_out, False)
            sums[1] += b
            metric_sums(metric_codes, sums[2:], ws, a, yb, yl, b, n_out)
        if out.shape[0] > 0:
            for r in range(b):
                for j in range(n_out):
                    out[pos + r, j] = ws[a + r * n_out + j]
        pos += b


@njit(cache=True)
def loss_gradients(prog, params, consts, grads, X, Yf, Yi, batch, ws, gs, yb, yl, loss_code, loss_mode,
                   n_parts, ab):
    """Mean loss over one batch (all rows of X, in order) and its gradient
    with respect to every parameter, written to ``grads``. Dropout is off.
    Used by tests (finite differences) and by callers that want gradients."""
    last = prog[prog.shape[0] - 1]
    n_out = last[N_OUT]
    fused = (last[FLAGS] & LOSS_FUSED) != 0
    b = X.shape[0]
    _copy_rows(X, 0, b, ws)
    if Yi.shape[0] > 0:
        yl[:b] = Yi[:b]
    else:
        _copy_rows(Yf, 0, b, yb)
    forward(prog, params, consts, ws, b, n_parts, ab, False)
    src = b * (last[Z_POS] if fused else last[A_POS])
    total = loss_and_grad(loss_code, ON_LOGITS if fused else loss_mode, ws, src, gs, src, yb, yl, b, n_out, True)
    backward(prog, params, consts, grads, ws, gs, b, n_parts, ab)
    return total / b
