"""Validation and one-time conversion of user arrays for the compiled loops.

Everything a kernel could trip on is checked here, in Python, before any
compiled code runs: dtypes, shapes, NaN/inf, label ranges. Inputs of any real
dtype are converted once to float32 C-contiguous 2-D arrays.
"""
import math

import numpy as np


def _real_array(a, what):
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{what} could not be converted to an array: {exc}") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{what} must hold real numbers (integer or float dtype), got dtype {arr.dtype}")
    return arr


def _check_finite(arr, what):
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{what} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def features(x, input_shape, what="x"):
    """``x`` of shape (n, *input_shape) as a float32 (n, features) array.

    ``input_shape`` may be None (model not built yet): any rank >= 2 is taken."""
    if x is None:
        raise ValueError(f"{what} is required")
    arr = _real_array(x, what)
    if arr.ndim < 2:
        if input_shape is not None and len(input_shape) == 1 and arr.ndim == 1 and input_shape[0] == 1:
            arr = arr.reshape(-1, 1)
        else:
            raise ValueError(f"{what} must have shape (samples, *features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} is empty (0 samples)")
    if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{what} has per-sample shape {tuple(arr.shape[1:])}, but the model expects "
                         f"{tuple(input_shape)} (full shape (samples, {', '.join(map(str, input_shape))}))")
    if math.prod(arr.shape[1:]) == 0:
        raise ValueError(f"{what} has no features: shape {arr.shape}")
    _check_finite(arr, what)
    return np.ascontiguousarray(arr.reshape(arr.shape[0], -1), dtype=np.float32)


def targets(y, n, loss, n_out, what="y"):
    """Targets for ``loss`` as ``(Yf, Yi)``: dense float32 (n, n_out) or int64 (n,) labels.

    The unused one is an empty array of the right dtype, so the compiled
    loop has one signature."""
    from ..kernels import program as P
    if y is None:
        raise ValueError(f"{what} is required for training and evaluation")
    arr = _real_array(y, what)
    if arr.shape[0:1] != (n,):
        raise ValueError(f"{what} has {arr.shape[0] if arr.ndim else 0} samples but x has {n}")
    _check_finite(arr, what)
    empty_f = np.zeros((0, n_out), dtype=np.float32)
    if loss.code == P.SCCE:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{what} for sparse_categorical_crossentropy must be integer class labels of "
                             f"shape ({n},), got shape {arr.shape}; use categorical_crossentropy for one-hot targets")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
            raise ValueError(f"{what}: sparse_categorical_crossentropy labels must be whole numbers")
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= n_out:
            raise ValueError(f"{what}: labels must be in [0, {n_out - 1}] for a model with {n_out} outputs, "
                             f"got values from {lo} to {hi}")
        return empty_f, np.ascontiguousarray(arr, dtype=np.int64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_out:
        hint = ""
        if loss.code == P.CCE and arr.ndim == 2 and arr.shape[1] == 1:
            hint = "; integer labels need sparse_categorical_crossentropy"
        raise ValueError(f"{what} must have shape ({n}, {n_out}) to match the model's {n_out} outputs, "
                         f"got {np.asarray(y).shape}{hint}")
    if loss.code == P.CCE and np.issubdtype(arr.dtype, np.integer) and n_out > 1 and \
            not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{what}: categorical_crossentropy needs one-hot targets; for integer labels use "
                         "sparse_categorical_crossentropy")
    return np.ascontiguousarray(arr, dtype=np.float32), np.zeros(0, dtype=np.int64)


def positive_int(value, what, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)
