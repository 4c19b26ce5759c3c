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
from .pointers import NO_WRAPPERS, function_pointer
from .sample_loss import GRADIENT_TYPE, VALUE_TYPE, rowwise_loss
from ..program import A_POS, BCE, CUSTOM, FLAGS, LOSS_FUSED, MAE, MSE, N_OUT, ON_LOGITS, Z_POS

_F1 = types.float32[::1]
_I1 = types.int64[::1]
# prog, ws, gs, yb, yl, wb, b, metric_codes, sums, want_grad, loss_value, loss_grad, loss_consts
BATCH_LOSS_SIG = types.float64(types.int64[:, ::1], _F1, _F1, _F1, _I1, _F1, types.int64, _I1, types.float64[::1],
                               types.boolean, VALUE_TYPE, GRADIENT_TYPE, _F1)

_ONE = np.float32(1.0)


@functools.lru_cache(maxsize=None)
def _batch_loss(code, mode, weighted, metric):
    """The batch loss of loss ``code`` reading the outputs in ``mode``
    (``ON_LOGITS`` when the loss fuses the last activation), ``weighted`` by
    the rows' sample weights (CUSTOM losses take that path too), for a model
    whose only metric is ``metric`` (-1: none, or several).

    The function adds the batch's loss (the sum of the per-sample losses,
    weighted when ``weighted``), its sample count and the sum of each metric of
    ``metric_codes`` to ``sums`` = [loss, samples, metrics...]; with
    ``want_grad`` it writes the gradient of the batch's mean loss with respect
    to what it read into ``gs`` (at the same place); it returns the loss.
    ``yb`` holds the batch's dense targets, ``yl`` its labels, ``wb`` its
    weights; ``loss_value``/``loss_grad``/``loss_consts`` a CUSTOM loss."""
    @njit(cache=True, error_model="numpy", **NO_WRAPPERS)
    def batch_loss(prog, ws, gs, yb, yl, wb, b, metric_codes, sums, want_grad, loss_value, loss_grad, loss_consts):
        last = prog[prog.shape[0] - 1]
        n = last[N_OUT]
        src = b * (last[Z_POS] if (last[FLAGS] & LOSS_FUSED) != 0 else last[A_POS])
        loss = 0.0
        if weighted:
            loss = rowwise_loss(code, mode, ws[src:src + b * n], gs[src:src + b * n], yb, yl, wb, b, n, want_grad,
                                loss_value, loss_grad, loss_consts)
        else:
            inv_b = _ONE / np.float32(b)
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
        out = b * last[A_POS]
        for k in range(metric_codes.shape[0]):
            code_k = metric if metric >= 0 else metric_codes[k]    # a single metric: only its formula compiles
            total = 0.0
            for r in range(b):
                total += row_metric(code_k, ws, out + r * n, yb, yl, r, n)
            sums[2 + k] += total
        return loss
    return batch_loss


@njit(cache=True, **NO_WRAPPERS)
def no_batch_loss(prog, ws, gs, yb, yl, wb, b, metric_codes, sums, want_grad, loss_value, loss_grad, loss_consts):
    """Stands in for the batch loss of a run without a loss (``predict``; never called)."""
    return 0.0


def loss_function(prog, loss_code, loss_mode, weighted, metric_codes):
    """The pointer to the batch loss of ``loss_code`` (``loss_mode``: 1 for
    ``from_logits``) on the outputs of ``prog``, weighted by sample weights
    when ``weighted``, with the metrics of ``metric_codes`` (the codes the
    loop will pass); ``no_batch_loss`` when ``loss_code`` is negative (no loss)."""
    if loss_code < 0:
        return function_pointer(no_batch_loss, BATCH_LOSS_SIG)
    fused = (prog[-1, FLAGS] & LOSS_FUSED) != 0
    metric = int(metric_codes[0]) if len(metric_codes) == 1 else -1
    fn = _batch_loss(int(loss_code), ON_LOGITS if fused else int(loss_mode), bool(weighted or loss_code == CUSTOM),
                     metric)
    return function_pointer(fn, BATCH_LOSS_SIG)
