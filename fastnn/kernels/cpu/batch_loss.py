"""The loss, its gradient and the metric sums of one batch, for the compiled loops.

The loops call the batch loss through a pointer (``loss_function``), and each
built-in loss gets a function compiled for it alone: the loss code, the mode
it reads the outputs in, whether samples are weighted and the metric (when
there is one) are constants of a closure (Numba's cache keys a closure by the
values it captures), so Numba prunes the other branches before it compiles
anything and a model compiles only its own loss and metric formulas. The loss
and metric loops are written here, one inline level above the per-row
formulas (Numba copies inlined code once more at every level of inlining).
On the seeds' sparse categorical cross-entropy with accuracy, the cold compile
of the batch loss went from 1.5-1.7 s (one function per loss family, its
loops in inlined helpers) to 0.8 s.
"""
import functools

import numpy as np
from numba import njit, types

from .losses import binary_row_loss, categorical_row_loss, regression_row_loss, row_metric
from .pointers import NO_WRAPPERS, function_pointer, pointer_from_address
from .sample_loss import GRADIENT_TYPE, VALUE_TYPE, rowwise_loss
from ..program import BCE, CUSTOM, MAE, MSE, ON_LOGITS

_F1 = types.float32[::1]
_I1 = types.int64[::1]
_I64 = types.int64
# ws, gs, src, out, n, yb, yl, wb, b, metric_codes, sums, want_grad, weight, loss_value, loss_grad, loss_consts
BATCH_LOSS_SIG = types.float64(_F1, _F1, _I64, _I64, _I64, _F1, _I1, _F1, _I64, _I1, types.float64[::1],
                               types.boolean, types.float32, VALUE_TYPE, GRADIENT_TYPE, _F1)
batch_loss_pointer = pointer_from_address(BATCH_LOSS_SIG)

_ONE = np.float32(1.0)


@functools.lru_cache(maxsize=None)
def _batch_loss(code, mode, weighted, metric):
    """The batch loss of loss ``code`` reading the outputs in ``mode``
    (``ON_LOGITS`` when the loss fuses the last activation), ``weighted`` by
    the rows' sample weights (CUSTOM losses take that path too), for a model
    whose only metric is ``metric`` (-1: none, or several).

    The function reads the ``b`` x ``n`` block of ``ws`` at ``src`` (the
    output, or the logits of a fused activation) and adds the batch's loss
    (the sum of the per-sample losses, weighted when ``weighted``), its
    sample count and the sum of each metric of ``metric_codes`` (on the
    output block at ``out``) to ``sums`` = [loss, samples, metrics...]; with
    ``want_grad`` it writes ``weight`` times the gradient of the batch's mean
    loss with respect to what it read into ``gs`` (at the same place); it
    returns the loss. ``yb`` holds the batch's dense targets (b x n), ``yl``
    its labels, ``wb`` its weights; ``loss_value``/``loss_grad``/``loss_consts``
    a CUSTOM loss."""
    @njit(cache=True, error_model="numpy", **NO_WRAPPERS)
    def batch_loss(ws, gs, src, out, n, yb, yl, wb, b, metric_codes, sums, want_grad, weight, loss_value, loss_grad,
                   loss_consts):
        loss = 0.0
        if weighted:
            loss = rowwise_loss(code, mode, ws[src:src + b * n], gs[src:src + b * n], yb, yl, wb, b, n, want_grad,
                                weight, loss_value, loss_grad, loss_consts)
        else:
            inv_b = weight / np.float32(b)
            # losses.row_loss's dispatch, written out: through row_loss (one more
            # inline level) this function compiled in 1.15 s instead of 0.7 s.
            for r in range(b):
                s = src + r * n
                if code == MSE or code == MAE:
                    loss += regression_row_loss(code, mode, ws, s, gs, s, want_grad, yb, yl, r, n, inv_b)
                elif code == BCE:
                    loss += binary_row_loss(code, mode, ws, s, gs, s, want_grad, yb, yl, r, n, inv_b)
                else:
                    loss += categorical_row_loss(code, mode, ws, s, gs, s, want_grad, yb, yl, r, n, inv_b)
        sums[0] += loss
        sums[1] += b
        for k in range(metric_codes.shape[0]):
            code_k = metric if metric >= 0 else metric_codes[k]    # a single metric: only its formula compiles
            total = 0.0
            for r in range(b):
                total += row_metric(code_k, ws, out + r * n, yb, yl, r, n)
            sums[2 + k] += total
        return loss
    return batch_loss


def loss_address(loss_code, loss_mode, fused, weighted, metric_codes):
    """The address of the batch loss of ``loss_code`` (``loss_mode``: 1 for
    ``from_logits``; ``fused``: it reads the logits of a fused softmax/sigmoid),
    weighted by sample weights when ``weighted``, with the metrics of
    ``metric_codes`` (the codes the loop will pass for this output)."""
    metric = int(metric_codes[0]) if len(metric_codes) == 1 else -1
    fn = _batch_loss(int(loss_code), ON_LOGITS if fused else int(loss_mode), bool(weighted or loss_code == CUSTOM),
                     metric)
    return function_pointer(fn, BATCH_LOSS_SIG).address
