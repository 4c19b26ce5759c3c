"""Forward, backward and the compiled training / inference loops.

Thread ownership: Numba's pool owns the cores and BLAS runs single-threaded
inside it (the Python side pins BLAS to one thread while these loops run),
because two spinning pools on two cores slow each other down several-fold.
Each matrix product is split into ``n_parts`` column blocks, one per thread,
and each thread runs single-threaded SGEMM on its block; elementwise work
on a block (bias, activation) is done by the thread that just computed it,
while the block is in its cache.

All parallel work goes through one ``prange`` dispatcher, ``_parallel``,
which runs a task's block ``t`` on thread ``t``: every parallel region
costs seconds of compile time, so there is exactly one. For the same reason
arrays are copied with explicit loops, never ``a[i:j] = b[k:l]``: Numba
compiles a shape-mismatch error message for every slice assignment, which
cost over five seconds of cold compile.
"""
import numpy as np
from numba import njit, prange, types

from ..program import (A_POS, ACT, ACTIVATION, AUX, B_OFF, BATCHNORM, CUSTOM, DENSE, DROPOUT, FLAGS, FROZEN, KIND,
                       LEAKY_RELU, LOSS_FUSED, N_IN, N_OUT, NEED_DX, NORMALIZE, ON_LOGITS, RESCALE, W_OFF, X_POS,
                       Z_POS)
from .activations import LINEAR, SOFTMAX, act_backward, act_forward, softmax_rows, softmax_rows_backward
from .batchnorm import batchnorm_backward, batchnorm_forward, batchnorm_update_moving
from .blas import gemm
from .losses import loss_and_grad, metric_sums
from .optimizers import prepare_step, update_range
from .regularizers import penalty
from .sample_loss import GRADIENT_TYPE, VALUE_TYPE, rowwise_loss
from .signatures import D1, F1, F2, I1, I2

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_NORM_EPS = np.float32(1e-7)

# Tasks of the parallel dispatcher.
_DENSE_FWD, _ELEMENTWISE_FWD, _ACT_BWD, _DENSE_BWD, _UPDATE = range(5)


@njit(cache=True, inline="always")
def _block(n, n_parts, t):
    """Items [lo, hi) of part ``t`` when ``n`` items are split in parts.

    Blocks are multiples of 16 so threads never share a cache line of a
    row and tiny layers stay on one thread."""
    size = (n + n_parts - 1) // n_parts
    size = ((size + 15) // 16) * 16
    lo = t * size
    return min(lo, n), min(lo + size, n)


@njit(cache=True, error_model="numpy")
def _dense_forward_block(rec, params, ws, b, c0, c1, ab):
    """Columns [c0, c1) of z = x @ W + bias and a = act(z)."""
    n_in, n_out, act = rec[N_IN], rec[N_OUT], rec[ACT]
    x, z, a = b * rec[X_POS], b * rec[Z_POS], b * rec[A_POS]
    bias = rec[B_OFF]
    gemm(False, False, b, c1 - c0, n_in, ab, ws, x, n_in, params, rec[W_OFF] + c0, n_out, ws, z + c0, n_out)
    for r in range(b):
        zr = ws[z + r * n_out + c0:z + r * n_out + c1]
        if bias >= 0:
            bv = params[bias + c0:bias + c1]
            for j in range(zr.shape[0]):
                zr[j] += bv[j]
        if act != SOFTMAX and act != LINEAR:
            act_forward(act, zr, ws[a + r * n_out + c0:a + r * n_out + c1])


@njit(cache=True, error_model="numpy")
def _elementwise_forward_block(rec, params, consts, ws, b, c0, c1):
    """Columns [c0, c1) of an Activation, Normalize or Rescale op."""
    kind, n, act = rec[KIND], rec[N_OUT], rec[ACT]
    x, a = b * rec[X_POS], b * rec[A_POS]
    for r in range(b):
        xv = ws[x + r * n + c0:x + r * n + c1]
        av = ws[a + r * n + c0:a + r * n + c1]
        if kind == ACTIVATION:
            act_forward(act, xv, av)
        elif kind == NORMALIZE:
            mean = params[rec[W_OFF] + c0:rec[W_OFF] + c1]
            var = params[rec[B_OFF] + c0:rec[B_OFF] + c1]
            for j in range(xv.shape[0]):
                av[j] = (xv[j] - mean[j]) / max(np.sqrt(var[j]), _NORM_EPS)
        else:  # RESCALE
            scale, offset = consts[rec[AUX]], consts[rec[AUX] + 1]
            for j in range(xv.shape[0]):
                av[j] = xv[j] * scale + offset


@njit(cache=True, error_model="numpy")
def _activation_backward_block(rec, ws, gs, b, c0, c1):
    """Columns [c0, c1) of gs[Z] = gs[A] * act'(z)."""
    n, act = rec[N_OUT], rec[ACT]
    z, a = b * rec[Z_POS], b * rec[A_POS]
    for r in range(b):
        lo, hi = r * n + c0, r * n + c1
        act_backward(act, ws[z + lo:z + hi], ws[a + lo:a + hi], gs[a + lo:a + hi], gs[z + lo:z + hi])


@njit(cache=True, error_model="numpy")
def _dense_backward_block(rec, params, grads, ws, gs, b, t, n_parts, ab):
    """Part ``t`` of dX = dZ W^T (if NEED_DX), dW = X^T dZ, db = sum_rows dZ.

    The part owns rows [r0, r1) of W: it reads them for dX's columns
    [r0, r1) and writes the same rows of dW, so no two threads touch the
    same cache lines; it also owns a column block of db."""
    n_in, n_out = rec[N_IN], rec[N_OUT]
    x, z = b * rec[X_POS], b * rec[Z_POS]
    w, bias = rec[W_OFF], rec[B_OFF]
    r0, r1 = _block(n_in, n_parts, t)
    frozen = (rec[FLAGS] & FROZEN) != 0
    if r0 < r1:
        if (rec[FLAGS] & NEED_DX) != 0:
            gemm(False, True, b, r1 - r0, n_out, ab, gs, z, n_out, params, w + r0 * n_out, n_out, gs, x + r0, n_in)
        if not frozen:
            gemm(True, False, r1 - r0, n_out, b, ab, ws, x + r0, n_in, gs, z, n_out, grads, w + r0 * n_out, n_out)
    if bias >= 0 and not frozen:
        c0, c1 = _block(n_out, n_parts, t)
        db = grads[bias + c0:bias + c1]
        for j in range(db.shape[0]):
            db[j] = _ZERO
        for r in range(b):
            row = gs[z + r * n_out + c0:z + r * n_out + c1]
            for j in range(db.shape[0]):
                db[j] += row[j]


@njit(f"void(int64, {I1}, {F1}, {F1}, {F1}, {F1}, {F1}, int64, int64, {F1}, int64, {F1}, int64, {F2}, int64)",
      cache=True, parallel=True)
def _parallel(task, rec, params, consts, grads, ws, gs, b, n_parts, ab, opt, hp, step, slots, n_train):
    """Runs block ``t`` of ``task`` on thread ``t`` for t in [0, n_parts)."""
    for t in prange(n_parts):
        if task == _DENSE_FWD or task == _ELEMENTWISE_FWD or task == _ACT_BWD:
            c0, c1 = _block(rec[N_OUT], n_parts, t)
            if c0 < c1:
                if task == _DENSE_FWD:
                    _dense_forward_block(rec, params, ws, b, c0, c1, ab)
                elif task == _ELEMENTWISE_FWD:
                    _elementwise_forward_block(rec, params, consts, ws, b, c0, c1)
                else:
                    _activation_backward_block(rec, ws, gs, b, c0, c1)
        elif task == _DENSE_BWD:
            _dense_backward_block(rec, params, grads, ws, gs, b, t, n_parts, ab)
        else:
            lo, hi = _block(n_train, n_parts, t)
            if lo < hi:
                update_range(opt, hp, step, params, grads, slots, lo, hi)


@njit(f"void({I1}, {F1}, {F1}, int64, boolean)", cache=True)
def _dropout(rec, consts, ws, b, training):
    """Training: draws a keep mask scaled by 1/(1-rate) into ws[Z], a = x * mask.
    Inference: identity. Masks come from Numba's generator (``seed_kernels``)."""
    n = rec[N_OUT]
    x, m, a = b * rec[X_POS], b * rec[Z_POS], b * rec[A_POS]
    if not training:
        for k in range(b * n):
            ws[a + k] = ws[x + k]
        return
    rate = consts[rec[AUX]]
    keep_scale = _ONE / (_ONE - rate)
    for k in range(b * n):
        mk = keep_scale if np.random.random() >= rate else _ZERO
        ws[m + k] = mk
        ws[a + k] = ws[x + k] * mk


@njit(f"void({I1}, {F1}, {F1}, int64)", cache=True)
def _leaky_relu(rec, consts, ws, b):
    """a = x if x > 0 else slope * x, slope from the layer's constants."""
    x, a = b * rec[X_POS], b * rec[A_POS]
    slope = consts[rec[AUX]]
    for k in range(b * rec[N_OUT]):
        v = ws[x + k]
        ws[a + k] = v if v > _ZERO else slope * v


@njit(f"void({I2}, {F1}, {F1}, {F1}, int64, int64, {F1}, boolean)", cache=True)
def forward(prog, params, consts, ws, b, n_parts, ab, training):
    """Runs every op of ``prog`` on the ``b`` rows already gathered into ws;
    ``training`` draws dropout masks and normalizes by batch statistics."""
    hp = np.empty(0, dtype=np.float32)
    no_slots = np.empty((0, 0), dtype=np.float32)
    for i in range(prog.shape[0]):
        rec = prog[i]
        kind = rec[KIND]
        if kind == DROPOUT:
            _dropout(rec, consts, ws, b, training)
            continue
        if kind == BATCHNORM:
            batchnorm_forward(rec, params, consts, ws, b, training)
            continue
        if kind == LEAKY_RELU:
            _leaky_relu(rec, consts, ws, b)
            continue
        if kind == ACTIVATION and rec[ACT] == SOFTMAX:
            softmax_rows(ws, b * rec[X_POS], ws, b * rec[A_POS], b, rec[N_OUT])
            continue
        task = _DENSE_FWD if kind == DENSE else _ELEMENTWISE_FWD
        _parallel(task, rec, params, consts, params, ws, ws, b, n_parts, ab, 0, hp, 0, no_slots, 0)
        if kind == DENSE and rec[ACT] == SOFTMAX:
            softmax_rows(ws, b * rec[Z_POS], ws, b * rec[A_POS], b, rec[N_OUT])


@njit(cache=True)
def seed_kernels(seed):
    """Seeds the generator compiled code draws from (dropout masks)."""
    np.random.seed(seed)


@njit(cache=True)
def update_moving_statistics(prog, params, consts, ws, b):
    """After a training forward pass: BatchNormalization's moving mean and variance."""
    for i in range(prog.shape[0]):
        if prog[i, KIND] == BATCHNORM:
            batchnorm_update_moving(prog[i], params, consts, ws, b)


@njit(f"void({I2}, {F1}, {F1}, {F1}, {F1}, {F1}, int64, int64, {F1}, boolean)", cache=True)
def backward(prog, params, consts, grads, ws, gs, b, n_parts, ab, training):
    """Back-propagates from the output gradient already in ``gs``;
    ``training`` must be the value the forward pass ran with."""
    hp = np.empty(0, dtype=np.float32)
    no_slots = np.empty((0, 0), dtype=np.float32)
    for i in range(prog.shape[0] - 1, -1, -1):
        rec = prog[i]
        kind = rec[KIND]
        flags = rec[FLAGS]
        if kind == BATCHNORM:
            batchnorm_backward(rec, params, grads, ws, gs, b, training)
        elif kind == DENSE and (flags & FROZEN) != 0 and (flags & NEED_DX) == 0:
            continue    # a frozen layer with nothing trainable before it: no gradient needed
        elif kind == DENSE or kind == ACTIVATION:
            act = rec[ACT]
            if act != LINEAR and (flags & LOSS_FUSED) == 0 and (kind == DENSE or (flags & NEED_DX) != 0):
                if act == SOFTMAX:
                    softmax_rows_backward(ws, gs, b * rec[A_POS], gs, b * rec[Z_POS], b, rec[N_OUT])
                else:
                    _parallel(_ACT_BWD, rec, params, consts, grads, ws, gs, b, n_parts, ab, 0, hp, 0, no_slots, 0)
            if kind == DENSE:
                _parallel(_DENSE_BWD, rec, params, consts, grads, ws, gs, b, n_parts, ab, 0, hp, 0, no_slots, 0)
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
                        if training:
                            gk = gk * ws[zp + k]
                    elif kind == LEAKY_RELU:
                        if ws[x + k] <= _ZERO:
                            gk = gk * consts[rec[AUX]]
                    gs[x + k] = gk


@njit(cache=True)
def _gather(X, ids, pos, b, dst):
    """Copies rows ids[pos:pos+b] of 2-D X to the start of flat dst (b x features)."""
    f = X.shape[1]
    for r in range(b):
        row = X[ids[pos + r]]
        for j in range(f):
            dst[r * f + j] = row[j]


@njit(f"void({F2}, int64, int64, {F1})", cache=True)
def _copy_rows(X, pos, b, dst):
    """Copies rows [pos, pos+b) of 2-D X to the start of flat dst."""
    f = X.shape[1]
    for r in range(b):
        for j in range(f):
            dst[r * f + j] = X[pos + r, j]


@njit(cache=True)
def _gather_labels(Yi, ids, pos, b, dst):
    for r in range(b):
        dst[r] = Yi[ids[pos + r]]


_BATCH_LOSS_SIG = types.void(types.int64[:, ::1], types.float32[::1], types.float32[::1], types.float32[::1],
                             types.int64[::1], types.float32[::1], types.int64, types.int64, types.int64,
                             types.int64[::1], types.float64[::1], types.boolean, VALUE_TYPE, GRADIENT_TYPE,
                             types.float32[::1])


@njit(_BATCH_LOSS_SIG, cache=True)
def _batch_loss(prog, ws, gs, yb, yl, wb, b, loss_code, loss_mode, metric_codes, sums, want_grad,
                loss_value, loss_grad, loss_consts):
    """Adds the batch's loss (weighted by ``wb`` when not empty), sample count
    and metric values to ``sums``; with ``want_grad`` writes the output
    gradient into ``gs``. A CUSTOM loss calls ``loss_value``/``loss_grad``."""
    last = prog[prog.shape[0] - 1]
    fused = (last[FLAGS] & LOSS_FUSED) != 0
    src = b * (last[Z_POS] if fused else last[A_POS])
    mode = ON_LOGITS if fused else loss_mode
    n = last[N_OUT]
    if loss_code == CUSTOM or wb.shape[0] > 0:
        sums[0] += rowwise_loss(loss_code, mode, ws[src:src + b * n], gs[src:src + b * n], yb, yl, wb, b, n,
                                want_grad, loss_value, loss_grad, loss_consts)
    else:
        sums[0] += loss_and_grad(loss_code, mode, ws, src, gs, src, yb, yl, b, n, want_grad)
    sums[1] += b
    metric_sums(metric_codes, sums[2:], ws, b * last[A_POS], yb, yl, b, last[N_OUT])


@njit(cache=True)
def _copy_outputs(prog, ws, b, out, pos):
    """Copies the ``b`` output rows of the last op to ``out[pos:pos + b]`` (2-D float32)."""
    last = prog[prog.shape[0] - 1]
    n_out = last[N_OUT]
    a = b * last[A_POS]
    for r in range(b):
        for j in range(n_out):
            out[pos + r, j] = ws[a + r * n_out + j]


@njit(cache=True)
def train_steps(prog, params, consts, grads, slots, n_trainable, opt, hp, step, bounds,
                X, Yf, Yi, ids, start, stop, batch, ws, gs, yb, yl,
                loss_code, loss_mode, metric_codes, sums, n_parts, ab,
                regs, sw, loss_value, loss_grad, loss_consts, pred_out):
    """Trains on rows ids[start:stop] in batches of ``batch``; returns the step count.

    Stops early, before its update, at the first batch whose loss is NaN or
    inf (``sums[0]`` is then non-finite): the weights stay the last finite
    ones, those that batch was computed with (BatchNormalization's moving
    statistics excepted: fit restores the epoch's start if they went
    non-finite), and fit stops there (raising NonFiniteLossError, or quietly
    when TerminateOnNaN asks it to) without returning to Python every step.

    Arrays: ``X`` (N, features) float32; ``Yf`` (N, outputs) float32 dense
    targets or ``Yi`` (N,) int64 labels (the other is empty); ``ids`` int64
    row order. ``ws``/``gs`` workspaces sized for ``batch`` rows, ``yb``/``yl``
    target blocks. ``sums`` float64 accumulates [loss, samples, metrics...];
    the loss includes the weight penalties of ``regs`` (``regularizers.penalty``)
    once per sample, as Keras adds them to every batch's loss.
    ``step`` is the optimizer's iteration count before this call; ``slots``
    (k, n) its state, ``hp`` its parameter vector (``optimizers.prepare_step``
    updates it each step), ``bounds`` the offsets of the trainable weight
    arrays (for clipping by norm).
    ``sw`` (N,) float32 sample weights or empty; ``loss_value``/``loss_grad``/
    ``loss_consts`` a CUSTOM loss (``sample_loss``); ``pred_out`` (N, outputs)
    float32 or empty: receives the training-mode outputs of row ids[i] at i.
    """
    sparse = Yi.shape[0] > 0
    weighted = sw.shape[0] > 0
    wb = np.empty(batch if weighted else 0, dtype=np.float32)
    pos = start
    while pos < stop:
        b = min(batch, stop - pos)
        _gather(X, ids, pos, b, ws)
        if sparse:
            _gather_labels(Yi, ids, pos, b, yl)
        else:
            _gather(Yf, ids, pos, b, yb)
        if weighted:
            for r in range(b):
                wb[r] = sw[ids[pos + r]]
        forward(prog, params, consts, ws, b, n_parts, ab, True)
        update_moving_statistics(prog, params, consts, ws, b)
        _batch_loss(prog, ws, gs, yb, yl, wb, b, loss_code, loss_mode, metric_codes, sums, True,
                    loss_value, loss_grad, loss_consts)
        backward(prog, params, consts, grads, ws, gs, b, n_parts, ab, True)
        if regs.shape[0] > 0:
            sums[0] += b * penalty(regs, consts, params, grads, True)
        if not np.isfinite(sums[0]):
            break   # a NaN/inf loss: stop before this batch's update (fit then stops)
        if pred_out.shape[0] > 0:
            _copy_outputs(prog, ws, b, pred_out, pos)
        step += 1
        prepare_step(opt, hp, step, grads, bounds)
        _parallel(_UPDATE, prog[0], params, consts, grads, ws, gs, b, n_parts, ab, opt, hp, step, slots,
                  n_trainable)
        pos += b
    return step


@njit(cache=True)
def infer_steps(prog, params, consts, X, Yf, Yi, start, stop, batch, ws, yb, yl,
                loss_code, loss_mode, metric_codes, sums, out, n_parts, ab,
                sw, loss_value, loss_grad, loss_consts):
    """Forward pass on rows [start, stop) of X in order.

    With ``loss_code >= 0`` adds [loss, samples, metrics...] to ``sums`` as
    ``train_steps`` does (weighted by ``sw`` when not empty; weight penalties
    are constant here and added by the caller); with ``out`` non-empty copies
    the outputs of rows [start, stop) into ``out[start:stop]`` (2-D float32)."""
    weighted = sw.shape[0] > 0
    wb = np.empty(batch if weighted else 0, dtype=np.float32)
    pos = start
    while pos < stop:
        b = min(batch, stop - pos)
        _copy_rows(X, pos, b, ws)
        forward(prog, params, consts, ws, b, n_parts, ab, False)
        if loss_code >= 0:
            if Yi.shape[0] > 0:
                for r in range(b):
                    yl[r] = Yi[pos + r]
            else:
                _copy_rows(Yf, pos, b, yb)
            if weighted:
                for r in range(b):
                    wb[r] = sw[pos + r]
            _batch_loss(prog, ws, ws, yb, yl, wb, b, loss_code, loss_mode, metric_codes, sums, False,
                        loss_value, loss_grad, loss_consts)
        if out.shape[0] > 0:
            _copy_outputs(prog, ws, b, out, pos)
        pos += b


@njit(cache=True)
def loss_gradients(prog, params, consts, grads, X, Yf, Yi, batch, ws, gs, yb, yl, loss_code, loss_mode,
                   n_parts, ab, regs, sw, loss_value, loss_grad, loss_consts, training):
    """Loss over one batch (all rows of X, in order: the mean of the per-sample
    losses, weighted by ``sw`` when not empty, plus the weight penalties) and
    its gradient with respect to every trainable parameter, written to
    ``grads``. ``training`` runs the layers as in ``fit`` (dropout masks,
    batch statistics) without updating moving statistics. Nothing is updated.
    Used by tests (finite differences) and by callers that want gradients."""
    b = X.shape[0]
    _copy_rows(X, 0, b, ws)
    if Yi.shape[0] > 0:
        for r in range(b):
            yl[r] = Yi[r]
    else:
        _copy_rows(Yf, 0, b, yb)
    forward(prog, params, consts, ws, b, n_parts, ab, training)
    sums = np.zeros(2, dtype=np.float64)
    wb = np.empty(b if sw.shape[0] > 0 else 0, dtype=np.float32)
    for r in range(wb.shape[0]):
        wb[r] = sw[r]
    _batch_loss(prog, ws, gs, yb, yl, wb, b, loss_code, loss_mode, np.zeros(0, dtype=np.int64), sums, True,
                loss_value, loss_grad, loss_consts)
    backward(prog, params, consts, grads, ws, gs, b, n_parts, ab, training)
    reg = penalty(regs, consts, params, grads, True) if regs.shape[0] > 0 else 0.0
    return sums[0] / b + reg
