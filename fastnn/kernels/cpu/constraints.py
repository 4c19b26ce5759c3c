"""Weight constraints (Keras 3's MaxNorm / NonNeg / UnitNorm / MinMaxNorm), applied to
the flat buffer after every optimizer update inside the training loop.

``cons`` is an int64 table, one row per constrained weight array:
``[offset, outer, length, inner, code, c]``: the array viewed as (outer,
length, inner) with the constraint's axis in the middle, its numbers at
``consts[c:]``. With n the Euclidean norm over that axis and eps = 1e-7
(Keras's ``backend.epsilon()``):

    MAX_NORM (max_value):               w *= clip(n, 0, max_value) / (eps + n)
    NON_NEG:                            w = w if w >= 0 else 0
    UNIT_NORM:                          w /= eps + n
    MIN_MAX_NORM (min, max, rate):      w *= (rate * clip(n, min, max) + (1 - rate) * n) / (eps + n)
"""
import math

import numpy as np
from numba import njit, types

from .pointers import NO_WRAPPERS, function_pointer

MAX_NORM, NON_NEG, UNIT_NORM, MIN_MAX_NORM = range(4)
CONSTRAIN_SIG = types.void(types.int64[:, ::1], types.float32[::1], types.float32[::1])
_EPS = 1e-7


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def constrain(cons, consts, params):
    for i in range(cons.shape[0]):
        off, outer, length, inner, code, c = cons[i, 0], cons[i, 1], cons[i, 2], cons[i, 3], cons[i, 4], cons[i, 5]
        if code == NON_NEG:
            for k in range(off, off + outer * length * inner):
                if params[k] < 0:
                    params[k] = np.float32(0.0)
            continue
        for o in range(outer):
            for j in range(inner):
                base = off + o * length * inner + j
                sq = 0.0
                for t in range(length):
                    v = params[base + t * inner]
                    sq += v * v
                norm = math.sqrt(sq)
                if code == MAX_NORM:
                    desired = min(max(norm, 0.0), consts[c])
                elif code == UNIT_NORM:
                    desired = 1.0
                else:
                    rate = consts[c + 2]
                    desired = rate * min(max(norm, consts[c]), consts[c + 1]) + (1.0 - rate) * norm
                scale = np.float32(desired / (_EPS + norm))
                for t in range(length):
                    params[base + t * inner] *= scale


@njit(cache=True, **NO_WRAPPERS)
def no_constraints(cons, consts, params):
    """``constrain`` of a model without constraints: nothing."""


def constrain_function(cons):
    """The pointer the training loop calls after each update for the constraints of ``cons``."""
    return function_pointer(constrain if cons.shape[0] > 0 else no_constraints, CONSTRAIN_SIG)
