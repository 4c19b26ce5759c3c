"""Validation and conversion of user arrays for the compiled loops.

Everything a kernel could trip on is checked here, in Python, before the
compiled code sees the data: dtypes, shapes, NaN/inf, label ranges. Every
error is a ``ValueError`` whose message starts with the argument's name.

Two kinds of check, so that data too large to scan up front can be checked
as it is read (``sources``):

* layout checks read only shapes and dtypes (``feature_layout``,
  ``target_layout``);
* value checks read the data (``features_into``, ``targets_into``); they are
  given the original row numbers of the rows they see, so a message can say
  where the bad value is.

``features`` and ``targets`` do both for a whole in-memory array.
Features become float32 ``(rows, features)`` arrays; values are checked
after the conversion, so a float64 beyond float32's range (which would
become inf) is refused too.
"""
import math
import os

import numpy as np

from ..kernels import program as P

# bool, signed and unsigned integers, floats: what converts to float32 meaningfully.
_REAL_KINDS = "biuf"


def real_array(a, what):
    """``a`` as a NumPy array of a real dtype (no copy for arrays, memmaps included)."""
    if a is None:
        raise ValueError(f"{what} is required")
    try:
        arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{what} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in _REAL_KINDS:
        hint = " (an object array: check for None, strings or ragged rows)" if arr.dtype.kind == "O" else ""
        if arr.dtype.kind in "USO" and any(isinstance(v, (str, bytes)) for v in arr.reshape(-1)[:1000]):
            hint = ("; it holds strings: encode them as numbers first, e.g. labels as class indices with "
                    "sklearn.preprocessing.LabelEncoder (what Keras's StringLookup layer does) or "
                    "np.unique(labels, return_inverse=True)")
        raise ValueError(f"{what} must hold real numbers (bool, integer or float dtype), "
                         f"got dtype {arr.dtype}{hint}")
    return arr


def feature_layout(arr, input_shape, what="x"):
    """Checks the shape of features ``arr`` (rank, per-sample shape, not empty)
    without reading it; returns ``(samples, features per sample)``.

    ``input_shape`` is the model's per-sample shape, or None (any rank >= 2)."""
    shape = arr.shape
    if len(shape) == 1 and input_shape is not None and tuple(input_shape) == (1,):
        shape = (shape[0], 1)   # a column of scalars for a one-feature model
    if len(shape) < 2:
        raise ValueError(f"{what} must have shape (samples, *features), got shape {arr.shape}")
    if shape[0] == 0:
        raise ValueError(f"{what} is empty (0 samples)")
    if input_shape is not None and tuple(shape[1:]) != tuple(input_shape):
        raise ValueError(f"{what} has per-sample shape {tuple(shape[1:])}, but the model expects "
                         f"{tuple(input_shape)} (full shape (samples, {', '.join(map(str, input_shape))}))")
    width = math.prod(shape[1:])
    if width == 0:
        raise ValueError(f"{what} has no features: shape {arr.shape}")
    return shape[0], width


def kernel_ready(arr):
    """True when the compiled loops can read ``arr`` as it is: C-contiguous,
    aligned and writeable (a read-only array is a different Numba type, and
    would cost a second compile of every loop)."""
    f = arr.flags
    return f.c_contiguous and f.aligned and f.writeable


def _first_bad(arr, rows):
    """``(row, column)`` of the first NaN/inf in 2-D ``arr``; rows renamed through ``rows``."""
    step = max(1, (1 << 20) // max(1, arr.shape[1]))
    for lo in range(0, arr.shape[0], step):
        bad = np.argwhere(~np.isfinite(arr[lo:lo + step]))
        if bad.size:
            r, c = int(bad[0][0]) + lo, int(bad[0][1])
            return (int(rows[r]) if rows is not None else r), c
    return None


def check_finite(arr, what, rows=None):
    """Refuses NaN and inf in float32/float16 ``arr`` (2-D: rows x columns).

    A sum is finite when every value is, and needs no temporary array: NaN
    and inf propagate through it. The float32 sum (twice as fast) can also
    overflow, so a non-finite one is checked again in float64, which float32
    values cannot overflow: that sum is finite exactly when every value is.
    ``rows`` maps row positions to the user's row numbers."""
    with np.errstate(invalid="ignore", over="ignore"):   # inf + -inf: NaN, which is the answer
        if arr.size == 0 or np.isfinite(np.sum(arr)) or np.isfinite(np.sum(arr, dtype=np.float64)):
            return
    where = _first_bad(arr.reshape(arr.shape[0], -1), rows)
    at = f"row {where[0]}, column {where[1]}" if where else "some element"
    raise ValueError(f"{what} contains NaN or inf (first at {at}); "
                     "float64 values beyond float32's range (about 3.4e38) count as inf")


def features_into(rows_arr, out, what="x", rows=None):
    """Converts ``rows_arr`` (rows, *per-sample shape) of any real dtype into
    the float32 (rows, features) array ``out`` and checks its values."""
    with np.errstate(over="ignore", invalid="ignore"):   # an overflow becomes inf, refused just below
        np.copyto(out, rows_arr.reshape(out.shape), casting="unsafe")
    check_finite(out, what, rows)
    return out


def features(x, input_shape, what="x"):
    """``x`` of shape (n, *input_shape) as a float32 (n, features) array,
    checked. No copy when ``x`` already is float32, C-contiguous and writeable."""
    arr = real_array(x, what)
    n, width = feature_layout(arr, input_shape, what)
    flat = arr.reshape(n, width)
    if flat.dtype == np.float32 and kernel_ready(flat):
        check_finite(flat, what)
        return flat
    return features_into(flat, np.empty((n, width), dtype=np.float32), what)


def target_layout(arr, n, loss, out_shape, what="y"):
    """Checks the shape and dtype of targets ``arr`` for ``loss`` and a model
    with outputs ``out_shape`` (per sample), without reading values.

    Returns ``"sparse"`` (integer labels, one per sample) or ``"dense"``
    (float targets shaped like the output)."""
    out_shape = _shape(out_shape)
    n_out = math.prod(out_shape)
    got = arr.shape[0] if arr.ndim else 0
    if got != n:
        raise ValueError(f"{what} has {got} samples but x has {n}; x and y must have the same length")
    if loss.code == P.SCCE:
        if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
            return "sparse"
        raise ValueError(f"{what} for sparse_categorical_crossentropy must be integer class labels of "
                         f"shape ({n},), got shape {arr.shape}; use categorical_crossentropy for one-hot targets")
    if arr.shape[1:] in ((n_out,), tuple(out_shape)) or (arr.ndim == 1 and n_out == 1):
        return "dense"
    hint = ""
    if loss.code == P.CCE and (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1)):
        hint = "; integer class labels need sparse_categorical_crossentropy"
    raise ValueError(f"{what} must have shape ({n}, {', '.join(map(str, out_shape))}) to match the model's "
                     f"output, got {arr.shape}{hint}")


def targets_into(rows_arr, kind, loss, n_out, out, what="y", rows=None):
    """Converts and checks target rows: ``out`` is float32 (rows, n_out) for
    dense targets or int64 (rows,) for sparse labels."""
    if kind == "sparse":
        labels = rows_arr.reshape(-1)
        if labels.dtype.kind == "f":
            check_finite(labels.reshape(-1, 1), what, rows)
            frac = labels != np.floor(labels)
            if frac.any():
                r = int(np.argmax(frac))
                raise ValueError(f"{what}: sparse_categorical_crossentropy labels must be whole numbers, "
                                 f"got {labels[r].item()!r} at row {_row(r, rows)}")
        bad = (labels < 0) | (labels >= n_out)
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(f"{what}: labels must be integers in [0, {n_out - 1}] for a model with {n_out} "
                             f"outputs, got {labels[r].item()!r} at row {_row(r, rows)} "
                             f"(values from {labels.min().item()!r} to {labels.max().item()!r})")
        np.copyto(out, labels, casting="unsafe")
        return out
    flat = rows_arr.reshape(out.shape)
    if loss.code == P.CCE and flat.dtype.kind in "iub" and n_out > 1:
        bad = (flat != 0) & (flat != 1)
        if bad.any():
            r = int(np.argwhere(bad)[0][0])
            raise ValueError(f"{what}: categorical_crossentropy needs one-hot (or probability) targets, got "
                             f"integer values other than 0 and 1 (row {_row(r, rows)}); for integer class "
                             "labels use sparse_categorical_crossentropy")
    with np.errstate(over="ignore", invalid="ignore"):
        np.copyto(out, flat, casting="unsafe")
    check_finite(out, what, rows)
    return out


def _shape(out_shape):
    """A per-sample output shape as a tuple (an int is a flat width)."""
    return (int(out_shape),) if isinstance(out_shape, (int, np.integer)) else tuple(out_shape)


def _row(r, rows):
    return int(rows[r]) if rows is not None else r


def empty_targets(n_out):
    """The ``(Yf, Yi)`` pair with no targets (inference): both empty, so the
    compiled loops keep one signature."""
    return np.zeros((0, n_out), dtype=np.float32), np.zeros(0, dtype=np.int64)


def targets(y, n, loss, out_shape, what="y"):
    """Targets for ``loss`` as ``(Yf, Yi)``: dense float32 (n, n_out) or int64
    (n,) labels; the unused one is empty, so the compiled loop has one signature.
    ``out_shape``: the model's per-sample output shape (or its flat width)."""
    arr = real_array(y, what)
    kind = target_layout(arr, n, loss, out_shape, what)
    n_out = math.prod(_shape(out_shape))
    empty_f, empty_i = empty_targets(n_out)
    if kind == "sparse":
        return empty_f, targets_into(arr, kind, loss, n_out, np.empty(n, dtype=np.int64), what)
    return targets_into(arr, kind, loss, n_out, np.empty((n, n_out), dtype=np.float32), what), empty_i


def positive_int(value, what, minimum=1):
    """``value`` as an int >= ``minimum``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def rows_per_batch(batch_size, n):
    """The batch size the loops run: ``batch_size``, but at most the ``n`` rows
    of the data when ``n`` is known (Keras then trains on one smaller batch),
    so the per-batch buffers are never sized beyond the data."""
    return batch_size if n is None else max(1, min(batch_size, n))


def check_workspace(batch, floats_per_row):
    """Refuses, before anything is allocated, a batch whose float32 working
    memory (``batch * floats_per_row`` values) exceeds the machine's RAM."""
    need = batch * floats_per_row * 4
    total = _physical_memory()
    if total is not None and need > total:
        raise ValueError(f"batch_size={batch} needs {need / 2**30:,.1f} GiB of working memory for this model "
                         f"({floats_per_row} float32 values per row), more than this machine's "
                         f"{total / 2**30:,.1f} GiB; use a smaller batch_size")


def _physical_memory():
    """Bytes of RAM (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
