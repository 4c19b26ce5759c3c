"""Learning-rate schedules with Keras 3's names, arguments and maths.

Pass one as ``learning_rate=`` to any optimizer. The four built-ins are
encoded as a few float32 numbers (``encode``) and evaluated inside the
compiled training loop before every step (``kernels/cpu/schedules.py``, where
the formulas are written out), at the optimizer's iteration count before the
step, as Keras does. Calling a schedule on a step returns the same float32
value from Python.

A subclass of ``LearningRateSchedule`` that defines ``__call__(step)`` also
works; fit then evaluates it in Python before every step, which runs the
compiled loop one step at a time.
"""
import numbers

import numpy as np

from ..kernels import program as P
from ..kernels.cpu.schedules import scheduled_rate
from ..utils.numbers import fits_float32

_MAX_EXACT_STEP = 2 ** 24   # every integer up to here is exact in float32


def _number(value, what, minimum=None, strictly=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not fits_float32(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (strictly and value == minimum)):
        raise ValueError(f"{what} must be {'>' if strictly else '>='} {minimum}, got {value!r}")
    return value


class LearningRateSchedule:
    """Base class. Built-ins set ``code`` and ``_numbers``; a user's subclass
    defines ``__call__(step)`` (step: the iteration count, an int) and
    ``get_config``."""
    code = None

    def __call__(self, step):
        if self.code is None:
            raise NotImplementedError(f"Learning rate schedule {type(self).__name__!r} must override __call__(step)")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        return scheduled_rate(self.encode(), int(step))

    def encode(self):
        """The float32 vector ``[code, numbers...]`` the compiled loop reads."""
        return np.array([self.code, *self._numbers()], dtype=np.float32)

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule {type(self).__name__!r} must override get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with
    ``staircase`` the exponent is floored."""
    code = P.SCHED_EXPONENTIAL

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", 0)
        self.decay_steps = _number(decay_steps, "decay_steps", 0, strictly=True)
        self.decay_rate = _number(decay_rate, "decay_rate", 0)
        self.staircase = bool(staircase)
        self.name = name

    def _numbers(self):
        return [self.initial_learning_rate, self.decay_steps, self.decay_rate, float(self.staircase)]

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(ExponentialDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``;
    with ``staircase`` the ratio step / decay_steps is floored."""
    code = P.SCHED_INVERSE_TIME

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while step <= boundaries[0], ``values[i]`` while
    boundaries[i-1] < step <= boundaries[i], ``values[-1]`` after the last."""
    code = P.SCHED_PIECEWISE

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"The length of boundaries should be 1 less than the length of values; got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        for i, b in enumerate(boundaries):
            _number(b, f"boundaries[{i}]")
            if abs(b) >= _MAX_EXACT_STEP:
                raise ValueError(f"boundaries[{i}] = {b!r}: boundaries must be below 2**24 steps")
            if i and b <= boundaries[i - 1]:
                raise ValueError(f"boundaries must be strictly increasing, got {boundaries!r}")
        for i, v in enumerate(values):
            _number(v, f"values[{i}]", 0)
        self.boundaries, self.values, self.name = boundaries, values, name

    def _numbers(self):
        return [len(self.boundaries), *self.boundaries, *self.values]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps``, then cosine decay over
    ``decay_steps`` from the warmup target (or the initial rate when there is
    no warmup) down to ``alpha`` times it."""
    code = P.SCHED_COSINE

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", 0)
        self.decay_steps = _number(decay_steps, "decay_steps", 0, strictly=True)
        self.alpha = _number(alpha, "alpha", 0)
        self.name = name
        self.warmup_target = None if warmup_target is None else _number(warmup_target, "warmup_target", 0)
        self.warmup_steps = _number(warmup_steps, "warmup_steps", 0)

    def _numbers(self):
        warm = self.warmup_target is not None
        return [self.initial_learning_rate, self.decay_steps, self.alpha, 1 - self.alpha, float(warm),
                self.warmup_target if warm else 0.0, self.warmup_steps]

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


_BY_CLASS = {c.__name__: c for c in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, CosineDecay)}


def serialize(schedule):
    """Keras's serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config):
    """A built-in schedule from ``serialize``'s dict; never imports or runs code."""
    if not isinstance(config, dict):
        raise ValueError(f"A serialized schedule must be a dict, got {type(config).__name__}")
    cls = _BY_CLASS.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown learning rate schedule {config.get('class_name')!r}; "
                         f"expected one of {sorted(_BY_CLASS)}")
    return cls.from_config(dict(config.get("config", {})))


__all__ = ["CosineDecay", "ExponentialDecay", "InverseTimeDecay", "LearningRateSchedule",
           "PiecewiseConstantDecay", "deserialize", "serialize"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
