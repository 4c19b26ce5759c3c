"""Keras-shaped layers: shapes, configuration and weights (maths in kernels/)."""
from .activations import LeakyReLU
from .base import Layer, Variable
from .core import Activation, Dense, Flatten, Input, InputLayer, Reshape
from .normalization import BatchNormalization
from .preprocessing import Normalization, Rescaling
from .regularization import Dropout

_BY_CLASS = {c.__name__: c for c in (InputLayer, Dense, Flatten, Reshape, Activation, Normalization,
                                     Rescaling, Dropout, BatchNormalization, LeakyReLU)}


def get_class(name):
    """The layer class registered under ``name`` (never imports anything)."""
    cls = _BY_CLASS.get(name)
    if cls is None:
        raise ValueError(f"Unknown layer class {name!r}; fastnn has {sorted(_BY_CLASS)}")
    return cls
