"""Activation layers with their own parameters."""
import warnings

from ..kernels import program as P
from ..utils.numbers import fits_float32
from .base import Layer, Op


class LeakyReLU(Layer):
    """``x if x > 0 else negative_slope * x``; Keras 3's layer default slope is 0.3
    (the function ``activations.leaky_relu`` uses 0.2). ``alpha`` is the
    Keras 2 name of ``negative_slope`` and is accepted with a warning, as Keras 3 does."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        if negative_slope is None or isinstance(negative_slope, bool) or \
                not fits_float32(negative_slope) or \
                negative_slope < 0:
            raise ValueError("The negative_slope value of a Leaky ReLU layer cannot be None or negative, and must "
                             f"be finite in float32, got negative_slope={negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def op(self, input_shape):
        return Op(P.LEAKY_RELU, consts=(self.negative_slope,))

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
