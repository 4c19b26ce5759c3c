"""Losses one sample at a time: sample weights, and a user's loss through function pointers.

The batch loss compiled for each built-in loss (``batch_loss``) serves
unweighted built-in losses. Two cases need the loss of each sample on its
own, and go through ``rowwise_loss`` instead:

- sample weights (Keras 3, reduction ``sum_over_batch_size``): the batch loss
  is ``sum_i w_i * l_i / b``, so the gradient of row i is scaled by ``w_i / b``;
- a ``fastnn.losses.Loss`` subclass with its own per-sample functions, written
  in Numba's subset of Python and compiled here (``compile_loss``) into
  functions with fixed signatures:

      value(y_true, y_pred, constants) -> float          the sample's loss
      gradient(y_true, y_pred, constants, out) -> None   out = d value / d y_pred

  ``y_true``, ``y_pred`` and ``out`` are float32[::1] rows of the output width,
  ``constants`` the loss's float32 constants (e.g. Huber's delta).

The compiled loops receive the two functions as pointers
(``pointers.function_pointer``), typed by their signature alone: one
compiled (and disk-cached) training loop serves every loss; a new loss
compiles only its own two functions. Built-in losses pass
``unused_loss()``, which is never called.
"""
import functools

import numpy as np
from numba import njit, types
from numba.core.dispatcher import Dispatcher
from numba.core.errors import NumbaError

from .losses import row_loss
from .pointers import NO_WRAPPERS, Pointer, call, function_pointer
from ..program import CUSTOM

ROW = types.float32[::1]
VALUE_SIG = types.float64(ROW, ROW, ROW)
GRADIENT_SIG = types.void(ROW, ROW, ROW, ROW)
VALUE_TYPE = Pointer(VALUE_SIG)
GRADIENT_TYPE = Pointer(GRADIENT_SIG)


def _callback(fn, sig, what):
    """``fn`` (a Python function or an @njit one) compiled for ``sig``, as a pointer."""
    py = fn.py_func if isinstance(fn, Dispatcher) else fn
    if not callable(py):
        raise TypeError(f"{what} must be a function, got {fn!r}")
    try:
        try:
            return function_pointer(njit(sig, **NO_WRAPPERS, cache=True)(py), sig)
        except RuntimeError as exc:   # no cache locator: defined in a REPL or by exec
            if "cannot cache" not in str(exc):
                raise
            return function_pointer(njit(sig, **NO_WRAPPERS)(py), sig)
    except NumbaError as exc:
        raise ValueError(
            f"{what} could not be compiled by Numba with the signature {sig}: it must be written in Numba's "
            f"subset of Python (loops, math, NumPy on the float32 rows it is given). Numba said:\n{exc}") from None


def compile_loss(value, gradient, name):
    """The pair of pointers to a loss's compiled ``value`` and ``gradient`` functions."""
    return (_callback(value, VALUE_SIG, f"{name}.value"),
            _callback(gradient, GRADIENT_SIG, f"{name}.gradient"))


def _no_value(y_true, y_pred, constants):
    return 0.0


def _no_gradient(y_true, y_pred, constants, out):
    pass


@functools.lru_cache(maxsize=None)
def unused_loss():
    """Placeholder callbacks for built-in losses (never called)."""
    return compile_loss(_no_value, _no_gradient, "unused_loss")


@njit(cache=True, error_model="numpy")
def rowwise_loss(code, mode, src, grad, yf, yi, wb, b, n, want_grad, weight, loss_value, loss_grad, loss_consts):
    """Sum over the ``b`` rows of w_i * l_i; with ``want_grad`` writes
    ``weight`` * d(sum_i w_i l_i / b)/d output into ``grad`` (``weight``:
    the output's loss weight, float32).

    ``src``/``grad`` are the output block and its gradient block (1-D views of
    b x n), ``yf``/``yi`` the gathered dense targets / labels, ``wb`` the rows'
    weights (empty: all 1). ``code == CUSTOM`` calls ``loss_value`` and
    ``loss_grad``; other codes call ``losses.row_loss`` on one row."""
    weighted = wb.shape[0] > 0
    inv_b = weight / np.float32(b)
    total = 0.0
    for r in range(b):
        w = wb[r] if weighted else np.float32(1.0)
        pred = src[r * n:(r + 1) * n]
        g = grad[r * n:(r + 1) * n]
        if code == CUSTOM:
            target = yf[r * n:(r + 1) * n]
            loss = call(loss_value, target, pred, loss_consts)
            if want_grad:
                call(loss_grad, target, pred, loss_consts, g)
        else:
            loss = row_loss(code, mode, src, r * n, grad, r * n, want_grad, yf, yi, r, n, np.float32(1.0))
        total += w * loss
        if want_grad:
            scale = w * inv_b
            for j in range(n):
                g[j] *= scale
    return total
