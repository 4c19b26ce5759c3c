"""Range checks for numbers that enter fastnn and are used as float32.

A value finite in float64 (1e300) becomes inf in float32, and a tiny positive
one (1e-50) becomes 0; both must be refused where they enter (arguments,
configs, files), not found later as inf or NaN outputs.
"""
import math
import numbers

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)


def fits_float32(value):
    """True for a real scalar (not bool) that is finite after conversion to float32."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value) \
        and abs(value) <= FLOAT32_MAX


def all_fit_float32(arr):
    """True when every value of the real array ``arr`` is finite after conversion to float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.asarray(arr).astype(np.float32, copy=False)).all())
