"""Weight constraints with Keras 3's names: ``kernel_constraint=keras.constraints.MaxNorm(2.0)``,
``add_weight(..., constraint="non_neg")``.

``fit`` applies them to the weights after every optimizer update, inside the
compiled loop (formulas in ``fastnn.kernels.cpu.constraints``); calling one
on an array returns the constrained array (NumPy, the same formula).
``axis`` is the axis the norm runs over (an int; Dense kernels (in, out): 0,
one norm per unit, Keras's default).
"""
import numpy as np

from .kernels.cpu import constraints as K

_EPS = 1e-7


class Constraint:
    code = None

    def numbers(self):
        return ()

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __call__(self, w):
        raise NotImplementedError


class _NormConstraint(Constraint):
    def __init__(self, axis=0):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{type(self).__name__}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def _norms(self, w):
        return np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=self.axis, keepdims=True))


class MaxNorm(_NormConstraint):
    """Scales each norm down to at most ``max_value`` (default 2)."""
    code = K.MAX_NORM

    def __init__(self, max_value=2, axis=0):
        super().__init__(axis)
        self.max_value = float(max_value)

    def numbers(self):
        return (self.max_value,)

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float32)
        n = self._norms(w)
        return (w * (np.clip(n, 0, self.max_value) / (_EPS + n))).astype(np.float32)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Negative weights become 0."""
    code = K.NON_NEG

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float32)
        return w * (w >= 0)


class UnitNorm(_NormConstraint):
    """Each norm becomes 1."""
    code = K.UNIT_NORM

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float32)
        return (w / (_EPS + self._norms(w))).astype(np.float32)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(_NormConstraint):
    """Each norm moves toward [min_value, max_value] (default [0, 1]) by ``rate`` (default 1: all the way)."""
    code = K.MIN_MAX_NORM

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        super().__init__(axis)
        self.min_value, self.max_value, self.rate = float(min_value), float(max_value), float(rate)

    def numbers(self):
        return (self.min_value, self.max_value, self.rate)

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float32)
        n = self._norms(w)
        desired = self.rate * np.clip(n, self.min_value, self.max_value) + (1 - self.rate) * n
        return (w * (desired / (_EPS + n))).astype(np.float32)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
_BY_NAME = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}
_BY_CLASS = {c.__name__: c for c in _BY_NAME.values()}


def get(identifier):
    """A Constraint from None, a name ("max_norm"), a class name, a Keras record or an instance."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_CLASS.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown constraint {identifier!r}; expected one of {sorted(_BY_NAME)}")
        return cls()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        return _BY_CLASS[identifier["class_name"]].from_config(identifier.get("config") or {})
    raise ValueError(f"Could not interpret constraint {identifier!r}: fastnn applies its own constraints "
                     f"({sorted(_BY_CLASS)}) inside the compiled loop, not arbitrary callables")


def serialize(constraint):
    if constraint is None:
        return None
    return {"module": "keras.constraints", "class_name": type(constraint).__name__,
            "config": constraint.get_config(), "registered_name": None}


def layout(constraint, shape):
    """(outer, length, inner) of an array of ``shape`` around the constraint's axis."""
    if not isinstance(constraint, _NormConstraint) or not shape:
        return 1, int(np.prod(shape)), 1
    if not -len(shape) <= constraint.axis < len(shape):
        raise ValueError(f"{type(constraint).__name__}: axis {constraint.axis} is out of range for a weight of "
                         f"shape {tuple(shape)}")
    axis = constraint.axis % len(shape)
    return int(np.prod(shape[:axis])), int(shape[axis]), int(np.prod(shape[axis + 1:]))
