"""One seed for everything random in fastnn: initializers, shuffling, dropout."""
import random

import numpy as np

_rng = np.random.default_rng()


def set_random_seed(seed):
    """Seeds Python's ``random``, NumPy's global generator, fastnn's generator
    (initializers and shuffling) and the compiled code's generator (dropout)."""
    global _rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _rng = np.random.default_rng(seed)
    from ..kernels.cpu.engine import seed_kernels
    seed_kernels(seed % 2**32)


def rng():
    """The generator fastnn draws initial weights and shuffles from."""
    return _rng


def draw_seed():
    """A 32-bit seed from fastnn's generator, for code with its own generator."""
    return int(_rng.integers(0, 2**32 - 1))
