"""Activation functions: names, NumPy reference implementations, kernel codes.

``get(identifier)`` resolves a name, ``None`` or one of the functions below
to that function; its ``code`` attribute selects the compiled kernel branch
(``fastnn.kernels.cpu.activations``). Calling a function on a NumPy array
computes it in float32 with the same formula, which makes it usable both in
user code and as the reference the kernels are tested against.
"""
import math

import numpy as np

from .kernels.cpu import activations as _k

_REGISTRY = {}


def _register(code, *names):
    def wrap(fn):
        fn.code = code
        for n in names:
            _REGISTRY[n] = fn
        return fn
    return wrap


def _f32(x):
    return np.asarray(x, dtype=np.float32)


@_register(_k.LINEAR, "linear")
def linear(x):
    return _f32(x)


@_register(_k.RELU, "relu")
def relu(x):
    return np.maximum(_f32(x), np.float32(0))


@_register(_k.SIGMOID, "sigmoid")
def sigmoid(x):
    x = _f32(x)
    return (np.float32(0.5) * (np.float32(1) + np.tanh(np.float32(0.5) * x))).astype(np.float32)


@_register(_k.SOFTMAX, "softmax")
def softmax(x, axis=-1):
    x = _f32(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@_register(_k.TANH, "tanh")
def tanh(x):
    return np.tanh(_f32(x))


@_register(_k.ELU, "elu")
def elu(x):
    x = _f32(x)
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


@_register(_k.SELU, "selu")
def selu(x):
    x = _f32(x)
    alpha, scale = np.float32(1.6732632423543772), np.float32(1.0507009873554805)
    return scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


@_register(_k.GELU, "gelu")
def gelu(x):
    """Exact (erf) GELU, Keras 3's default ``approximate=False``."""
    x = _f32(x)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(np.float32)


@_register(_k.SWISH, "swish", "silu")
def swish(x):
    x = _f32(x)
    return x * sigmoid(x)


silu = swish


@_register(_k.LEAKY_RELU, "leaky_relu")
def leaky_relu(x):
    """Negative slope 0.2, as ``keras.activations.leaky_relu``."""
    x = _f32(x)
    return np.where(x > 0, x, np.float32(0.2) * x)


@_register(_k.SOFTPLUS, "softplus")
def softplus(x):
    x = _f32(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@_register(_k.EXPONENTIAL, "exponential")
def exponential(x):
    return np.exp(_f32(x))


def get(identifier):
    """Returns the activation function for a name, function or None (linear);
    also Keras's record of a function, ``{"class_name": "function", "config": name}``."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict) and identifier.get("class_name") == "function":
        identifier = identifier.get("config")
        if not isinstance(identifier, str):
            raise ValueError(f"Activation record must name a function, got {identifier!r}")
    if isinstance(identifier, str):
        fn = _REGISTRY.get(identifier.lower())
        if fn is None:
            raise ValueError(f"Unknown activation {identifier!r}; expected one of {sorted(_REGISTRY)}")
        return fn
    if callable(identifier) and getattr(identifier, "code", None) is not None and \
            _REGISTRY.get(getattr(identifier, "__name__", None)) is identifier:
        return identifier
    raise ValueError(
        f"Activation {identifier!r} is not one of fastnn's compiled activations; "
        f"pass a name from {sorted(_REGISTRY)} or a function from fastnn.activations")


def resolve(identifier):
    """(compiled activation, own callable or None): a name, None or a function of
    this module is compiled into the layer's op; a layer object (``LeakyReLU()``)
    or a function written with ``keras.ops`` is called on the layer's output
    (the layer's op then has no activation)."""
    from .layers.base import Layer
    if isinstance(identifier, Layer):
        return linear, identifier
    if callable(identifier) and not isinstance(identifier, (str, dict)) and \
            _REGISTRY.get(getattr(identifier, "__name__", None)) is not identifier:
        _check_traceable(identifier)
        return linear, identifier
    return get(identifier), None


def _check_traceable(fn):
    """Traces ``fn`` once on a stand-in tensor so a function that needs values (NumPy) is refused now."""
    from .layers.node import KerasTensor
    try:
        fn(KerasTensor((None, 1)))
    except ValueError:
        pass        # shapes: checked on the real tensor
    except Exception as exc:    # noqa: BLE001 -- any failure of the user's code on symbolic tensors
        raise ValueError(f"Activation {fn!r} is not one of fastnn's compiled activations and could not be traced "
                         f"with keras.ops ({type(exc).__name__}: {exc}); pass a name from {sorted(_REGISTRY)}, a "
                         "layer, or a function written with keras.ops") from None


def serialize(fn, own=None):
    """The config entry of an activation: its name; an own layer's Keras record; an own function's name."""
    if own is not None:
        from .layers.base import Layer
        if isinstance(own, Layer):
            from .layers import serialize as serialize_layer
            return serialize_layer(own)
        return getattr(own, "__name__", "custom_activation")
    return fn.__name__


def names():
    return sorted(_REGISTRY)


__all__ = ["elu", "exponential", "gelu", "get", "leaky_relu", "linear", "names", "relu", "selu",
           "serialize", "sigmoid", "silu", "softmax", "softplus", "swish", "tanh"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
