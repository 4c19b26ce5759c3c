"""Dropout masks from a counter-based hash, not one generator call per value.

``np.random.random()`` in compiled code costs about 25 ns a value (a Mersenne
Twister step, its conversion to a float, a branch), a fifth of an MLP's step
with Dropout after its 512-unit layers. Here a mask value is a function of a
key, drawn once per mask from Numba's generator (so
``keras.utils.set_random_seed`` still makes masks repeat), and of the value's
index: SplitMix64's output function (Steele, Lea and Flood, 2014) of
``key + index * golden``, whose top 32 bits are compared with
``rate * 2**32``. No state passes from one value to the next, so LLVM
vectorises the loop; each value is dropped with probability ``rate`` (within
2**-32), independently of the others.
"""
import numpy as np
from numba import njit

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_TWO_32 = 4294967296.0


@njit(cache=True, inline="always")
def draw_mask(mask, rate):
    """Fills ``mask`` (float32, 1-D) with 0 (probability ``rate``, in [0, 1)) or 1 / (1 - rate)."""
    keep = _ONE / (_ONE - rate)
    key = np.uint64(np.random.randint(0, 1 << 62))
    threshold = np.uint64(np.float64(rate) * _TWO_32)
    for k in range(mask.shape[0]):
        z = key + np.uint64(k) * _GOLDEN
        z = (z ^ (z >> _S30)) * _MIX1
        z = (z ^ (z >> _S27)) * _MIX2
        z = z ^ (z >> _S31)
        mask[k] = keep if (z >> _S32) >= threshold else _ZERO
