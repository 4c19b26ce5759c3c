"""Keras's NumPy helpers for targets and features: ``to_categorical``, ``normalize``."""
import numpy as np

__all__ = ["to_categorical", "normalize"]


def to_categorical(x, num_classes=None):
    """One-hot rows for integer class labels, as ``keras.utils.to_categorical``.

    Args:
        x: class indices 0..num_classes-1, any shape (a trailing axis of 1 is
            dropped, as Keras does); integers, or floats with integer values.
        num_classes: the number of classes; default ``max(x) + 1``.

    Returns:
        float64 array of shape ``x.shape + (num_classes,)`` (Keras's dtype):
        1.0 at each label's index, 0.0 elsewhere.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"to_categorical: x must hold integer class labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise ValueError("to_categorical: x must hold integer class labels; it holds non-integer values")
    labels = arr.astype(np.int64)
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    labels = labels.reshape(-1)
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("to_categorical: x is empty; pass num_classes")
        num_classes = int(labels.max()) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive integer, got {num_classes!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes - 1}] for num_classes={num_classes}, "
                         f"got values from {labels.min()} to {labels.max()}")
    out = np.zeros((labels.size, int(num_classes)))
    out[np.arange(labels.size), labels] = 1.0
    return out.reshape(*shape, int(num_classes))


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (zero norms left as 1),
    as ``keras.utils.normalize``; float, same shape as ``x``."""
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"Argument `order` must be an int >= 1. Received: order={order!r}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"normalize: x must hold real numbers, got dtype {arr.dtype}")
    norm = np.atleast_1d(np.linalg.norm(arr, order, axis))
    norm[norm == 0] = 1
    return arr / np.expand_dims(norm, axis)
