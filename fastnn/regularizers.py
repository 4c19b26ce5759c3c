"""Weight penalties with Keras 3's names, defaults and maths.

``L1(l1=0.01)``: ``l1 * sum(|w|)``; ``L2(l2=0.01)``: ``l2 * sum(w^2)`` (no 1/2);
``L1L2(l1=0.0, l2=0.0)``: both. ``l1``, ``l2`` and ``l1_l2`` are the same
classes, as in Keras. As a string, ``"l1"``, ``"l2"`` and ``"l1_l2"`` take the
factors 0.01 (Keras's documented string defaults).

Used as ``Dense(..., kernel_regularizer=regularizers.l2(1e-4))``: the penalty
of every trainable weight is added to each batch's loss (so History's
``loss`` includes it, and so do ``evaluate`` and ``val_loss``, as in Keras)
and its gradient is added inside the compiled training loop
(``fastnn.kernels.cpu.regularizers``). Calling a regularizer on an array
returns its penalty, computed in NumPy.
"""
import numpy as np

from .utils.numbers import fits_float32


def _factor(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not fits_float32(value) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float, received {name}={value!r}")
    return float(value)


class Regularizer:
    """Base class. fastnn computes penalties in compiled code, so a regularizer
    is described by its L1 and L2 factors (``factors()``)."""

    def __call__(self, x):
        l1, l2 = self.factors()
        x = np.asarray(x, dtype=np.float32)
        return np.float32(l1) * np.sum(np.abs(x)) + np.float32(l2) * np.sum(np.square(x))

    def factors(self):
        """(l1, l2) as floats."""
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w^2)``; both factors default to 0."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def factors(self):
        return self.l1, self.l2

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """``l1 * sum(|w|)``, l1 = 0.01 by default."""

    def __init__(self, l1=0.01):
        self.l1 = _factor(0.01 if l1 is None else l1, "l1")

    def factors(self):
        return self.l1, 0.0

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(w^2)``, l2 = 0.01 by default."""

    def __init__(self, l2=0.01):
        self.l2 = _factor(0.01 if l2 is None else l2, "l2")

    def factors(self):
        return 0.0, self.l2

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2

_BY_CLASS = {c.__name__: c for c in (L1, L2, L1L2)}
_BY_NAME = {"l1": lambda: L1(), "l2": lambda: L2(), "l1_l2": lambda: L1L2(0.01, 0.01),
            "l1l2": lambda: L1L2(0.01, 0.01)}


def get(identifier):
    """A regularizer from None, a name (``"l2"``), a class, an instance or a config dict."""
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        if type(identifier).factors is Regularizer.factors:
            raise ValueError(f"{type(identifier).__name__} does not define factors(); fastnn computes penalties in "
                             "compiled code from their (l1, l2) factors")
        return identifier
    if isinstance(identifier, str):
        make = _BY_NAME.get(identifier) or _BY_CLASS.get(identifier)
        if make is None:
            raise ValueError(f"Unknown regularizer {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME) + sorted(_BY_CLASS)}")
        return make()
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        raise ValueError(
            f"Regularizer {identifier!r} is a plain Python callable; fastnn adds penalties and their gradients "
            "inside compiled code, so use fastnn.regularizers.l1, l2 or l1_l2")
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")


def serialize(regularizer):
    if regularizer is None:
        return None
    """Keras 3's record of a regularizer (None for none)."""
    return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}


def deserialize(config):
    cls = _BY_CLASS.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown regularizer class {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))


__all__ = ["L1", "L1L2", "L2", "Regularizer", "deserialize", "get", "l1", "l1_l2", "l2", "serialize"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
