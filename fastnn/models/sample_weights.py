"""Validation of ``sample_weight`` and ``class_weight`` (Keras 3 semantics).

Both become one float32 weight per sample before any compiled code runs.
``class_weight`` maps class indices to weights and is turned into sample
weights as Keras does: the class of a sample is the argmax of a one-hot (or
multi-column) target, else its rounded label; classes missing from the dict
weigh 1.
"""
import numbers

import numpy as np

from ..utils.numbers import all_fit_float32, fits_float32


def sample_weights(sample_weight, n, what="sample_weight"):
    """``sample_weight`` as float32 (n,); shape (n,) or (n, 1), finite, >= 0."""
    try:
        w = np.asarray(sample_weight)
    except Exception as exc:
        raise ValueError(f"{what} could not be converted to an array: {exc}") from None
    if w.dtype == bool or not (np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)):
        raise ValueError(f"{what} must hold real numbers, got dtype {w.dtype}")
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"{what} must have shape ({n},), one weight per sample, got shape {w.shape}")
    if not all_fit_float32(w):
        raise ValueError(f"{what} contains NaN or inf (after conversion to float32)")
    if np.any(w < 0):
        raise ValueError(f"{what} must be non-negative, got a minimum of {w.min()}")
    return np.ascontiguousarray(w, dtype=np.float32)


def class_weights(class_weight, Yf, Yi, n_out):
    """Per-sample float32 weights from ``class_weight`` {class index: weight} and
    the converted targets (dense ``Yf`` or labels ``Yi``)."""
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be a dict {{class index: weight}}, got {type(class_weight).__name__}")
    n_classes = 2 if n_out == 1 else n_out
    table = np.ones(n_classes, dtype=np.float32)
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 0 <= key < n_classes:
            raise ValueError(f"class_weight keys must be class indices in [0, {n_classes - 1}] for a model with "
                             f"{n_out} output{'s' if n_out > 1 else ''}, got {key!r}")
        if not fits_float32(value) or value < 0:
            raise ValueError(f"class_weight[{key}] must be a non-negative finite number, got {value!r}")
        table[int(key)] = value
    if Yi.shape[0] > 0:
        classes = Yi
    elif Yf.shape[1] > 1:
        classes = np.argmax(Yf, axis=1)
    else:
        classes = np.round(Yf[:, 0]).astype(np.int64)
        if classes.min() < 0 or classes.max() >= n_classes:
            raise ValueError("class_weight needs class labels 0 or 1 for a model with one output; the targets "
                             f"round to values from {classes.min()} to {classes.max()}")
    return np.ascontiguousarray(table[classes], dtype=np.float32)
