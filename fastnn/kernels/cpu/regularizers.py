"""Weight penalties (Keras 3's L1 / L2 / L1L2) and their gradients on the flat buffer.

``regs`` is an int64 table with one row per regularized weight array:
``[offset, size, c]``, where ``consts[c]`` is the L1 factor and
``consts[c + 1]`` the L2 factor. The penalty is

    sum over rows of  l1 * sum(|w|) + l2 * sum(w^2)      (no 1/2, as Keras)

and its gradient ``l1 * sign(w) + 2 * l2 * w`` (sign(0) = 0, as TensorFlow's
gradient of abs) is added to ``grads``.

Speed: this runs once per training step over every regularized weight, so
it is one fused, vectorised pass (measured 40 us instead of 290 us for the
265k weights of the 784-300-100-10 MLP, the cost of reading the weights
and updating the gradient). Sums are float32 within blocks of 4096 and
float64 across blocks: relative error about 1e-8. Only ``reassoc`` (for
the vectorised sums) and ``contract`` are allowed of fastmath, so NaN and
inf propagate as usual.
"""
import numpy as np
from numba import njit, types

from .pointers import NO_WRAPPERS, function_pointer

_F1 = types.float32[::1]
PENALTY_SIG = types.float64(types.int64[:, ::1], _F1, _F1, _F1, types.boolean)

_ZERO = np.float32(0.0)
_TWO = np.float32(2.0)
_BLOCK = 4096


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"}, no_cfunc_wrapper=True)
def penalty(regs, consts, params, grads, want_grad):
    """The total penalty (float64); with ``want_grad`` adds its gradient to ``grads``."""
    total = 0.0
    for i in range(regs.shape[0]):
        off, size, c = regs[i, 0], regs[i, 1], regs[i, 2]
        l1, l2 = consts[c], consts[c + 1]
        two_l2 = _TWO * l2
        for lo in range(off, off + size, _BLOCK):
            hi = min(off + size, lo + _BLOCK)
            w = params[lo:hi]
            g = grads[lo:hi]
            s1 = _ZERO
            s2 = _ZERO
            for k in range(w.shape[0]):
                wk = w[k]
                s1 += abs(wk)
                s2 += wk * wk
                if want_grad:
                    sign = np.float32(wk > _ZERO) - np.float32(wk < _ZERO)
                    g[k] += l1 * sign + two_l2 * wk
            total += l1 * np.float64(s1) + l2 * np.float64(s2)
    return total


@njit(cache=True, **NO_WRAPPERS)
def no_penalty(regs, consts, params, grads, want_grad):
    """``penalty`` of a model without regularizers: 0."""
    return 0.0


def penalty_function(regs):
    """The pointer the training loop calls for the weight penalties of ``regs``."""
    return function_pointer(penalty if regs.shape[0] > 0 else no_penalty, PENALTY_SIG)
