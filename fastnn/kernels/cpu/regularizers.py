"""Weight penalties (Keras 3's L1 / L2 / L1L2) and their gradients on the flat buffer.

``regs`` is an int64 table with one row per regularized weight array:
``[offset, size, c]``, where ``consts[c]`` is the L1 factor and
``consts[c + 1]`` the L2 factor. The penalty is

    sum over rows of  l1 * sum(|w|) + l2 * sum(w^2)      (no 1/2, as Keras)

and its gradient ``l1 * sign(w) + 2 * l2 * w`` (sign(0) = 0, as TensorFlow's
gradient of abs) is added to ``grads``.
"""
import numpy as np
from numba import njit

from .signatures import F1, I2

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_TWO = np.float32(2.0)


@njit(f"float64({I2}, {F1}, {F1}, {F1}, boolean)", cache=True, error_model="numpy")
def penalty(regs, consts, params, grads, want_grad):
    """The total penalty (float64); with ``want_grad`` adds its gradient to ``grads``."""
    total = 0.0
    for i in range(regs.shape[0]):
        off, size, c = regs[i, 0], regs[i, 1], regs[i, 2]
        l1, l2 = consts[c], consts[c + 1]
        w = params[off:off + size]
        g = grads[off:off + size]
        s1 = 0.0
        s2 = 0.0
        for k in range(size):
            s1 += abs(w[k])
            s2 += w[k] * w[k]
        total += l1 * s1 + l2 * s2
        if want_grad:
            two_l2 = _TWO * l2
            for k in range(size):
                sign = _ONE if w[k] > _ZERO else (-_ONE if w[k] < _ZERO else _ZERO)
                g[k] += l1 * sign + two_l2 * w[k]
    return total
