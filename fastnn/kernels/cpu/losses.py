"""Per-row loss values, their gradients and metric values (``batch_loss``
runs them over a batch; the CUDA loss kernel runs ``row_loss`` and
``row_metric``).

Losses follow Keras 3 (TensorFlow backend): a mean over the batch and, for
mse/mae/binary cross-entropy, over outputs; cross-entropy on probabilities
clips them to [1e-7, 1 - 1e-7]; a softmax or sigmoid that feeds a
cross-entropy is fused, so the gradient is taken on the logits.
"""
import math

import numpy as np
from numba import njit

from ..program import BCE, MAE, MSE, ON_LOGITS, SCCE, M_BIN_ACC, M_CAT_ACC, M_MAE, M_SPARSE_ACC

EPS = np.float32(1e-7)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


# The three loss families are separate functions with one signature, inlined
# into the batch loss compiled for each loss (``batch_loss``), so a model
# compiles only its own formula: one function for all five losses cost about
# 1 s more cold compile.
# Arguments: the loss of row ``r`` (float64) whose values start at
# ``src[s]``; with ``want_grad`` the gradient of the batch-mean loss goes to
# ``grad[g:g+n]`` (``inv_b`` = 1 / batch size). ``yf`` dense targets (b x n),
# ``yi`` labels.


@njit(cache=True, error_model="numpy", inline="always")
def regression_row_loss(code, mode, src, s, grad, g, want_grad, yf, yi, r, n, inv_b):
    """MSE and MAE, averaged over the ``n`` outputs."""
    inv_bn = inv_b / np.float32(n)
    loss = 0.0
    for j in range(n):
        d = src[s + j] - yf[r * n + j]
        if code == MSE:
            loss += d * d
            if want_grad:
                grad[g + j] = np.float32(2.0) * d * inv_bn
        else:
            loss += abs(d)
            if want_grad:
                grad[g + j] = (_ONE if d > _ZERO else (-_ONE if d < _ZERO else _ZERO)) * inv_bn
    return loss / n


@njit(cache=True, error_model="numpy", inline="always")
def binary_row_loss(code, mode, src, s, grad, g, want_grad, yf, yi, r, n, inv_b):
    """Binary cross-entropy, averaged over the ``n`` outputs."""
    inv_bn = inv_b / np.float32(n)
    loss = 0.0
    for j in range(n):
        y = yf[r * n + j]
        x = src[s + j]
        if mode == ON_LOGITS:
            loss += max(x, _ZERO) - x * y + math.log1p(math.exp(-abs(x)))
            if want_grad:
                p = _ONE / (_ONE + np.float32(math.exp(-x))) if x >= _ZERO else \
                    np.float32(math.exp(x)) / (_ONE + np.float32(math.exp(x)))
                grad[g + j] = (p - y) * inv_bn
        else:
            # Keras 3 clips, then takes logs (Keras 2 also added EPS inside them).
            p = min(max(x, EPS), _ONE - EPS)
            loss -= y * math.log(p) + (_ONE - y) * math.log(_ONE - p)
            if want_grad:
                clipped = x < EPS or x > _ONE - EPS
                grad[g + j] = _ZERO if clipped else -(y / p - (_ONE - y) / (_ONE - p)) * inv_bn
    return loss / n


@njit(cache=True, error_model="numpy", inline="always")
def categorical_row_loss(code, mode, src, s, grad, g, want_grad, yf, yi, r, n, inv_b):
    """CCE and SCCE; the target of class j is yi[r] == j (SCCE) or yf[r, j]."""
    sparse = code == SCCE
    loss = 0.0
    if mode == ON_LOGITS:
        m = src[s]
        for j in range(1, n):
            m = max(m, src[s + j])
        z = 0.0
        for j in range(n):
            z += math.exp(src[s + j] - m)
        lse = m + math.log(z)
        ysum = _ZERO
        for j in range(n):
            y = (_ONE if yi[r] == j else _ZERO) if sparse else yf[r * n + j]
            ysum += y
            loss += y * (lse - src[s + j])
        if want_grad:
            for j in range(n):
                y = (_ONE if yi[r] == j else _ZERO) if sparse else yf[r * n + j]
                p = np.float32(math.exp(src[s + j] - lse))
                grad[g + j] = (ysum * p - y) * inv_b
        return loss
    # Keras renormalises the probabilities, then clips them.
    tot = _ZERO
    for j in range(n):
        tot += src[s + j]
    dq = _ZERO      # sum_i g_i q_i, g_i = dL/dq_i
    for j in range(n):
        q = src[s + j] / tot
        y = (_ONE if yi[r] == j else _ZERO) if sparse else yf[r * n + j]
        qc = min(max(q, EPS), _ONE - EPS)
        loss -= y * math.log(qc)
        gq = _ZERO if (q < EPS or q > _ONE - EPS) else -y / q
        dq += gq * q
        if want_grad:
            grad[g + j] = gq
    if want_grad:
        for j in range(n):
            grad[g + j] = (grad[g + j] - dq) / tot * inv_b
    return loss


@njit(cache=True)
def row_loss(code, mode, src, s, grad, g, want_grad, yf, yi, r, n, inv_b):
    """Any built-in loss of one row (arguments as the families'). The CUDA
    loss kernel and the weighted CPU path run this."""
    if code == MSE or code == MAE:
        return regression_row_loss(code, mode, src, s, grad, g, want_grad, yf, yi, r, n, inv_b)
    if code == BCE:
        return binary_row_loss(code, mode, src, s, grad, g, want_grad, yf, yi, r, n, inv_b)
    return categorical_row_loss(code, mode, src, s, grad, g, want_grad, yf, yi, r, n, inv_b)


# Inlined (as the families): Numba compiles a plain callee on its own and then
# again inside its caller.
@njit(cache=True, inline="always")
def row_metric(code, out, s, yf, yi, r, n):
    """Metric ``code``'s value for row ``r`` of the outputs at ``out[s:]``
    (also run by the CUDA loss kernel)."""
    if code == M_SPARSE_ACC or code == M_CAT_ACC:
        best = 0
        for j in range(1, n):
            if out[s + j] > out[s + best]:
                best = j
        if code == M_SPARSE_ACC:
            return 1.0 if best == yi[r] else 0.0
        tbest = 0
        for j in range(1, n):
            if yf[r * n + j] > yf[r * n + tbest]:
                tbest = j
        return 1.0 if best == tbest else 0.0
    v = 0.0
    for j in range(n):
        y = yf[r * n + j]
        p = out[s + j]
        if code == M_BIN_ACC:
            v += 1.0 if (_ONE if p > np.float32(0.5) else _ZERO) == y else 0.0
        elif code == M_MAE:
            v += abs(p - y)
        else:  # M_MSE, M_RMSE accumulate squared error
            v += (p - y) * (p - y)
    return v / n
