"""Dropout: zeroes a fraction ``rate`` of activations in training only."""
import math
import numbers

from ..kernels import program as P
from .base import Layer, Op


class Dropout(Layer):
    """Keeps each value with probability ``1 - rate``, scaled by ``1/(1 - rate)``
    (inverted dropout, as Keras), so every value keeps its expected value;
    identity at inference (``predict``, ``evaluate``, validation).

    Masks are drawn inside the compiled training loop from Numba's generator,
    which ``fastnn.utils.set_random_seed`` seeds: the same seed gives the same
    masks. ``seed`` is kept in the config for Keras compatibility; it does not
    give the layer a generator of its own.
    """
    propagates_mask = True
    keras_build_config = False

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) or \
                not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a number in [0, 1), got rate={rate!r}")
        if noise_shape is not None:
            raise ValueError("Dropout noise_shape is not supported")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"Dropout seed must be an integer or None, got {seed!r}")
        self.rate, self.seed = float(rate), seed

    def op(self, input_shape):
        return Op(P.DROPOUT, consts=(self.rate,), scratch=math.prod(input_shape))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": None}


class SpatialDropout2D(Dropout):
    """Dropout of whole channels of ``(rows, cols, channels)`` maps: in
    training each channel of each sample is zeroed with probability ``rate``
    (every pixel together) and the kept ones are scaled by ``1/(1 - rate)``;
    identity at inference. Masks come from the compiled loop's generator
    (see Dropout)."""

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        from .convolutional import check_data_format
        super().__init__(rate, seed=seed, name=name, dtype=dtype, **kwargs)
        self.data_format = check_data_format(data_format, "SpatialDropout2D")

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != 3:
            raise ValueError(f"SpatialDropout2D layer {self.name!r} needs inputs of shape (batch, rows, cols, "
                             f"channels), got {input_shape}")
        return tuple(input_shape)

    def op(self, input_shape):
        from ..kernels.kinds.spatial_dropout import SPATIAL_DROPOUT
        return Op(SPATIAL_DROPOUT, consts=(self.rate,), ints=(input_shape[-1],), scratch=input_shape[-1])

    def get_config(self):
        # Keras 3's exact keys: its SpatialDropout2D takes no ``trainable``
        base = super().get_config()
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": base["dtype"],
                "data_format": self.data_format}
