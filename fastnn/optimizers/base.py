"""The optimizer base class: what every Keras 3 optimizer takes.

An optimizer is its numbers plus its state: an iteration count and ``slots``,
a float32 (k, n) array whose rows are per-parameter buffers (momentum,
second moments...) the length of the model's trainable parameters. The
update itself is one compiled kernel over the flat buffer
(``fastnn.kernels.cpu.optimizers``, where the formulas are written out),
driven by the float32 vector ``hyper()`` returns.

Keras's base arguments: ``learning_rate`` (a float or a schedule from
``optimizers.schedules``), ``weight_decay`` (``w -= w * weight_decay * lr``
before each step), and at most one of ``clipnorm`` (each weight array's
gradient scaled to norm <= clipnorm), ``clipvalue`` (entries clamped to
[-clipvalue, clipvalue]) and ``global_clipnorm`` (all gradients scaled
together). ``use_ema``, ``loss_scale_factor`` and
``gradient_accumulation_steps`` are accepted at their defaults only.
"""
import warnings

import numpy as np

from ..kernels import program as P
from ..utils.numbers import fits_float32
from ..layers.base import Variable
from . import schedules


def number(value, what, minimum=None, maximum=None):
    """``value`` as a float after checking it is a finite real in [minimum, maximum]."""
    if not fits_float32(value):
        raise ValueError(f"{what} must be a finite number within float32's range (the kernels' type), "
                         f"got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{what} must be in [{minimum}, {maximum}], got {value!r}")
    return float(value)


def _optional(value, what):
    return None if value is None else number(value, what, minimum=0)


class Optimizer:
    """Subclasses set ``code`` (``program.*``), ``default_name``, fill their
    numbers into the parameter vector in ``_fill`` and list their state rows
    in ``slot_names``."""
    code = None
    default_name = None

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=3)
        if "lr" in kwargs:      # Keras 2's name, removed in Keras 3
            raise ValueError(f"{type(self).__name__}: `lr` is not an argument; use `learning_rate`, "
                             f"e.g. {type(self).__name__}(learning_rate={kwargs['lr']!r})")
        if kwargs:
            raise TypeError(f"Unexpected optimizer arguments: {sorted(kwargs)}")
        for arg, value, default in (("use_ema", use_ema, False), ("loss_scale_factor", loss_scale_factor, None),
                                    ("gradient_accumulation_steps", gradient_accumulation_steps, None),
                                    ("ema_overwrite_frequency", ema_overwrite_frequency, None)):
            if value != default:
                raise ValueError(f"{arg}={value!r} is not supported by fastnn; leave it at {default!r}")
        self.name = name or self.default_name
        self.weight_decay = _optional(weight_decay, "weight_decay")
        self.clipnorm = _optional(clipnorm, "clipnorm")
        self.clipvalue = _optional(clipvalue, "clipvalue")
        self.global_clipnorm = _optional(global_clipnorm, "global_clipnorm")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"Only one of clipnorm, clipvalue and global_clipnorm can be set; got "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.use_ema, self.ema_momentum = False, ema_momentum
        self.ema_overwrite_frequency = self.loss_scale_factor = self.gradient_accumulation_steps = None
        self._iterations = 0
        self.slots = None
        self._schedule = None
        self._lr = None
        self.learning_rate = learning_rate

    # -- learning rate and iterations, as Keras 3 variables ----------------
    @property
    def learning_rate(self):
        """The rate of the next step, as Keras 3 shows it: for a fixed rate a
        float32 ``Variable`` (``.numpy()``, ``float()``, arithmetic, ``assign``
        and ``keras.backend.set_value`` change the rate of the next step, also
        from a callback between batches); for a schedule its value at the
        current iteration count (a read-only snapshot)."""
        if self._schedule is not None:
            return _ReadOnly(np.float32(self._schedule(self.iterations)), "learning_rate")
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, schedules.LearningRateSchedule):
            self._schedule = value
            return
        if self._schedule is not None:
            raise TypeError("This optimizer was created with a LearningRateSchedule as its learning_rate, so its "
                            "learning rate cannot be set; create the optimizer with a float learning_rate instead")
        if callable(value) and not isinstance(value, Variable):
            raise ValueError("learning_rate must be a float or a keras.optimizers.schedules.LearningRateSchedule; "
                             "a plain callable cannot run in the compiled training loop")
        rate = number(_scalar(value, "learning_rate"), "learning_rate", minimum=0)
        if getattr(self, "_lr", None) is None:
            self._lr = _LearningRate(np.float32(rate), "learning_rate", trainable=False)
        else:
            self._lr.assign(rate)

    def _rate(self):
        """The rate of the next step as a Python float."""
        if self._schedule is not None:
            return float(self._schedule(self.iterations))
        return float(self._lr.value)

    @property
    def iterations(self):
        """Steps taken so far: an int with Keras's variable methods (``.numpy()``, ``assign``)."""
        return _Iterations(self._iterations, self)

    @iterations.setter
    def iterations(self, value):
        count = _scalar(value, "iterations")
        if isinstance(count, bool) or not float(count).is_integer() or count < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {value!r}")
        self._iterations = int(count)

    lr = learning_rate

    @property
    def schedule(self):
        """The LearningRateSchedule, or None for a fixed rate."""
        return self._schedule

    @property
    def schedule_in_python(self):
        """True for a user's schedule that only Python can evaluate."""
        return self._schedule is not None and self._schedule.code is None

    # -- state ------------------------------------------------------------
    slot_names = ()

    def build(self, n):
        """Creates (or keeps) the slots for ``n`` trainable parameters at
        Keras's initial values. There are at least two rows, so code that
        reads rows 0 and 1 by position works for every optimizer."""
        shape = (max(2, len(self.slot_names)), n)
        if self.slots is None or self.slots.shape != shape:
            self.slots = np.zeros(shape, dtype=np.float32)
            self._init_slots()
            self.iterations = 0

    def _init_slots(self):
        pass

    def hyper(self):
        """float32 parameter vector for the update kernel (``program.HP_*``),
        built from the current attributes, learning rate and iteration count:
        the training loop asks for it before every chunk of steps, so what
        callbacks change takes effect at the next step."""
        compiled = self._schedule is not None and not self.schedule_in_python
        schedule = self._schedule.encode() if compiled else [P.SCHED_NONE]
        hp = np.zeros(P.HP_SCHED + len(schedule), dtype=np.float32)
        hp[P.HP_SCHED:] = schedule
        hp[P.HP_LR] = self._rate()      # a Python schedule's rate: fit asks before every step
        hp[P.HP_WD] = self.weight_decay or 0.0
        hp[P.HP_CLIPNORM] = self.clipnorm or 0.0
        hp[P.HP_CLIPVALUE] = self.clipvalue or 0.0
        hp[P.HP_GLOBAL_CLIPNORM] = self.global_clipnorm or 0.0
        self._fill(hp)
        return hp

    def _fill(self, hp):
        pass

    # -- config -----------------------------------------------------------
    def get_config(self):
        lr = schedules.serialize(self._schedule) if self._schedule is not None else self._rate()
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency, "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self._rate():g}>"


def _scalar(value, what):
    """A number from a Python/NumPy number, a one-element array or a Variable."""
    if isinstance(value, Variable):
        value = value.value
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{what} must be a single number, got an array of shape {value.shape}")
        value = value.reshape(()).item()
    return value


class _LearningRate(Variable):
    """The fixed learning rate: a float32 scalar Variable whose assignments are checked as rates."""

    def assign(self, new):
        rate = number(_scalar(new, "learning_rate"), "learning_rate", minimum=0)
        self.value[...] = np.float32(rate)


class _ReadOnly(Variable):
    """A schedule's current rate: reads like a Variable, cannot be set."""

    def assign(self, new):
        raise TypeError("This optimizer's learning rate comes from a LearningRateSchedule and cannot be set")


class _Iterations(int):
    """``optimizer.iterations``: an int that also answers Keras's variable methods."""

    def __new__(cls, value, optimizer):
        obj = super().__new__(cls, value)
        obj._optimizer = optimizer
        return obj

    def numpy(self):
        return np.int64(self)

    def assign(self, value):
        self._optimizer.iterations = value

    @property
    def dtype(self):
        return "int64"

    @property
    def shape(self):
        return ()

    def __array__(self, dtype=None, copy=None):
        return np.array(int(self), dtype=dtype or np.int64)
