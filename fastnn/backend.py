"""``keras.backend``: the session and number-format functions Keras programs call.

fastnn computes in float32 with channels-last images, so ``floatx`` and
``image_data_format`` report those; ``epsilon`` is Keras's fuzz factor 1e-7.
``get_value`` / ``set_value`` read and write variables (an optimizer's
``learning_rate`` included: tf.keras's functions, which Keras 3 programs
still use through ``tf.keras.backend``).
"""
import numpy as np

from .layers.base import Variable, reset_names
from .layers.node import KerasTensor

_EPSILON = 1e-7


def clear_session(free_memory=True):
    """Starts the session's automatic names again (the next Dense is "dense")."""
    reset_names()


def floatx():
    return "float32"


def set_floatx(value):
    if value != "float32":
        raise ValueError(f"fastnn computes in float32 only; set_floatx({value!r}) is not supported")


def epsilon():
    return _EPSILON


def set_epsilon(value):
    """Keras's fuzz factor: fastnn's losses use 1e-7 in compiled code, so only that value is accepted."""
    if value != _EPSILON:
        raise ValueError(f"fastnn's compiled losses use epsilon 1e-7; set_epsilon({value!r}) is not supported")


def image_data_format():
    return "channels_last"


def set_image_data_format(data_format):
    if data_format != "channels_last":
        raise ValueError(f"fastnn supports channels_last images only, got {data_format!r}")


def backend():
    return "numpy"


def is_keras_tensor(x):
    return isinstance(x, KerasTensor)


def get_value(x):
    """The value of a Variable (or an array or number) as NumPy: a 0-d
    variable gives a NumPy scalar (``np.float32`` for a learning rate)."""
    if isinstance(x, KerasTensor):
        raise TypeError("get_value: a symbolic tensor has no value")
    value = np.array(x)
    return value[()] if value.ndim == 0 else value


def set_value(x, value):
    """Writes ``value`` into Variable ``x`` (same shape), e.g. an optimizer's
    ``learning_rate``; takes effect at the next training step."""
    if not isinstance(x, Variable):
        raise TypeError(f"set_value needs a Variable (e.g. model.optimizer.learning_rate), got {type(x).__name__}")
    x.assign(np.asarray(value, dtype=np.float32).reshape(x.shape))


def int_shape(x):
    """The shape as a tuple (None for a symbolic tensor's batch axis)."""
    return tuple(x.shape)
