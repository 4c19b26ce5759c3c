"""Dropout: zeroes a fraction ``rate`` of activations in training only."""
import numpy as np

from ..kernels import program as P
from .base import Layer, Op


class Dropout(Layer):
    """Keeps each value with probability ``1 - rate``, scaled by ``1/(1 - rate)``
    (inverted dropout, as Keras); identity at inference."""
    keras_build_config = False

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        if noise_shape is not None:
            raise ValueError("Dropout noise_shape is not supported")
        self.rate, self.seed = float(rate), seed

    def op(self):
        return Op(P.DROPOUT, consts=(self.rate,))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": None}
