"""Loss, its gradient and the running metric sums of one batch, one thread per row.

The formulas are those of ``fastnn.kernels.cpu.losses`` (Keras 3: means over
the batch, and over outputs for mse / mae / binary cross-entropy; clipping to
[1e-7, 1 - 1e-7] on probabilities; a fused softmax / sigmoid makes the loss
read logits), written per row. Row sums go to ``sums`` (float64) by atomic
adds: ``sums[0]`` the loss, ``sums[1]`` the sample count, ``sums[2 + k]``
metric ``k``'s per-sample values, as the CPU loops accumulate them.
"""
import math

import numpy as np
from numba import cuda

from ..program import (BCE, CCE, MAE, MSE, ON_LOGITS, SCCE, M_BIN_ACC, M_CAT_ACC, M_MAE, M_SPARSE_ACC)

_EPS = np.float32(1e-7)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_TWO = np.float32(2.0)
_HALF = np.float32(0.5)


@cuda.jit(device=True)
def _target(yf, yi, sparse, r, j, n):
    if sparse:
        return _ONE if yi[r] == j else _ZERO
    return yf[r * n + j]


@cuda.jit(device=True)
def _row_loss(code, mode, src, s, grad, g, want_grad, yf, yi, r, n, inv_b):
    """Loss of row ``r`` (float64) whose values start at ``src[s]``; writes the
    gradient of the batch-mean loss to ``grad[g:g+n]`` when ``want_grad``."""
    inv_bn = inv_b / np.float32(n)
    sparse = code == SCCE
    loss = 0.0
    if code == MSE or code == MAE:
        for j in range(n):
            d = src[s + j] - yf[r * n + j]
            if code == MSE:
                loss += d * d
                if want_grad:
                    grad[g + j] = _TWO * d * inv_bn
            else:
                loss += abs(d)
                if want_grad:
                    grad[g + j] = (_ONE if d > _ZERO else (-_ONE if d < _ZERO else _ZERO)) * inv_bn
        loss /= n
    elif code == BCE:
        for j in range(n):
            y = yf[r * n + j]
            x = src[s + j]
            if mode == ON_LOGITS:
                loss += max(x, _ZERO) - x * y + math.log1p(math.exp(-abs(x)))
                if want_grad:
                    if x >= _ZERO:
                        p = _ONE / (_ONE + math.exp(-x))
                    else:
                        p = math.exp(x) / (_ONE + math.exp(x))
                    grad[g + j] = (p - y) * inv_bn
            else:
                p = min(max(x, _EPS), _ONE - _EPS)
                loss -= y * math.log(p) + (_ONE - y) * math.log(_ONE - p)
                if want_grad:
                    if x < _EPS or x > _ONE - _EPS:
                        grad[g + j] = _ZERO
                    else:
                        grad[g + j] = -(y / p - (_ONE - y) / (_ONE - p)) * inv_bn
        loss /= n
    else:  # CCE / SCCE
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
                y = _target(yf, yi, sparse, r, j, n)
                ysum += y
                loss += y * (lse - src[s + j])
            if want_grad:
                for j in range(n):
                    p = np.float32(math.exp(src[s + j] - lse))
                    grad[g + j] = (ysum * p - _target(yf, yi, sparse, r, j, n)) * inv_b
        else:
            # Keras renormalises the probabilities, then clips them.
            tot = _ZERO
            for j in range(n):
                tot += src[s + j]
            dq = _ZERO
            for j in range(n):
                q = src[s + j] / tot
                y = _target(yf, yi, sparse, r, j, n)
                qc = min(max(q, _EPS), _ONE - _EPS)
                loss -= y * math.log(qc)
                gq = _ZERO
                if not (q < _EPS or q > _ONE - _EPS):
                    gq = -y / q
                dq += gq * q
                if want_grad:
                    grad[g + j] = gq
            if want_grad:
                for j in range(n):
                    grad[g + j] = (grad[g + j] - dq) / tot * inv_b
    return loss


@cuda.jit(device=True)
def _row_metric(code, out, s, yf, yi, r, n):
    """Metric ``code``'s value for row ``r`` of the outputs at ``out[s:]``."""
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
            v += 1.0 if (_ONE if p > _HALF else _ZERO) == y else 0.0
        elif code == M_MAE:
            v += abs(p - y)
        else:  # M_MSE, M_RMSE accumulate squared error
            v += (p - y) * (p - y)
    return v / n


@cuda.jit(cache=True)
def loss_rows(code, mode, src, src_off, grad, grad_off, want_grad, yf, yi, b, n, metric_codes,
              out, out_off, sums):
    """Adds the batch's loss, count and metric sums to ``sums`` and (when
    ``want_grad``) writes d(mean loss)/d src to ``grad[grad_off:]``.

    ``src[src_off:]``: the ``b x n`` outputs, or logits when ``mode`` is
    ON_LOGITS; ``out[out_off:]``: the outputs the metrics read; ``yf``
    (``b x n`` dense targets) or ``yi`` (``b`` labels) as the CPU kernel.
    ``code < 0`` skips the loss (metrics only)."""
    inv_b = _ONE / np.float32(b)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, b, stride):
        if code >= 0:
            loss = _row_loss(code, mode, src, src_off + r * n, grad, grad_off + r * n, want_grad,
                             yf, yi, r, n, inv_b)
            cuda.atomic.add(sums, 0, loss)
        for k in range(metric_codes.shape[0]):
            cuda.atomic.add(sums, 2 + k, _row_metric(metric_codes[k], out, out_off + r * n, yf, yi, r, n))
    if start == 0:
        cuda.atomic.add(sums, 1, np.float64(b))
