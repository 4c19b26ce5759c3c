"""Optimizers with Keras 3's names, defaults and update rules.

An optimizer is its hyper-parameters plus its state: an iteration count and
up to two slot buffers the length of the model's trainable parameters. The
update itself is one compiled kernel over the flat buffer
(``fastnn.kernels.cpu.optimizers``, where the formulas are written out).
"""
import numpy as np

from .kernels import program as P


class Optimizer:
    code = None
    n_slots = 0
    # What each row of ``slots`` holds, in Keras's names (rows past these are unused).
    slot_names = ()
    # Keras 3 config keys that fastnn accepts only at this value ({key: value}).
    keras_fixed = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                   "use_ema": False, "loss_scale_factor": None, "gradient_accumulation_steps": None}
    # Keras config keys that do nothing at the fixed values above (ema_momentum without EMA;
    # decay, which Keras 3 ignores) or that describe nothing fastnn keeps (is_legacy_optimizer).
    keras_ignored = ("ema_momentum", "ema_overwrite_frequency", "decay", "is_legacy_optimizer")

    def __init__(self, learning_rate=0.001, name=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unexpected optimizer arguments: {sorted(kwargs)}")
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.slots = None     # (2, n) float32 once built

    @property
    def learning_rate(self):
        return float(self._lr)

    @learning_rate.setter
    def learning_rate(self, value):
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"learning_rate must be a non-negative finite number, got {value!r}")
        self._lr = value

    lr = learning_rate

    def hyper(self):
        """float32 vector of hyper-parameters in ``program.HP_*`` order."""
        hp = np.zeros(P.N_HP, dtype=np.float32)
        hp[P.HP_LR] = self._lr
        self._fill(hp)
        return hp

    def _fill(self, hp):
        pass

    def build(self, n):
        """Creates (or keeps) zeroed slot buffers for ``n`` trainable parameters."""
        if self.slots is None or self.slots.shape[1] != n:
            self.slots = np.zeros((2, n), dtype=np.float32)
            self._init_slots()
            self.iterations = 0

    def _init_slots(self):
        pass

    def get_config(self):
        """Keras 3's optimizer config (learning rate as the float32 Keras keeps)."""
        return {"name": self.name, "learning_rate": float(np.float32(self._lr)), "weight_decay": None,
                "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
                "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
                "gradient_accumulation_steps": None}

    @classmethod
    def from_config(cls, config):
        """The optimizer for ``config`` (fastnn's or Keras's); options fastnn lacks are refused."""
        config = dict(config)
        what = f"Optimizer {cls.__name__}"
        if isinstance(config.get("learning_rate"), dict):
            raise ValueError(f"{what}: learning-rate schedules are not supported")
        for key, value in {**Optimizer.keras_fixed, **cls.keras_fixed}.items():
            if key in config and config.pop(key) != value:
                raise ValueError(f"{what}: fastnn supports only {key}={value!r}")
        for key in Optimizer.keras_ignored:
            config.pop(key, None)
        try:
            return cls(**config)
        except TypeError as e:
            raise ValueError(f"{what}: {e}") from None


class SGD(Optimizer):
    """lr 0.01, momentum 0, nesterov False."""
    code = P.SGD

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _fill(self, hp):
        hp[P.HP_1] = self.momentum
        hp[P.HP_NESTEROV] = 1.0 if self.nesterov else 0.0

    @property
    def slot_names(self):
        return ("momentum",) if self.momentum != 0 else ()

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """lr 0.001, rho 0.9, epsilon 1e-7 (inside the square root, as Keras)."""
    code = P.RMSPROP
    keras_fixed = {"momentum": 0.0, "centered": False}
    slot_names = ("velocity",)

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _fill(self, hp):
        hp[P.HP_1], hp[P.HP_EPS] = self.rho, self.epsilon

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": 0.0, "epsilon": self.epsilon,
                "centered": False}


class Adam(Optimizer):
    """lr 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7 (outside the square root)."""
    code = P.ADAM
    keras_fixed = {"amsgrad": False}
    slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _fill(self, hp):
        hp[P.HP_1], hp[P.HP_2], hp[P.HP_EPS] = self.beta_1, self.beta_2, self.epsilon

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": False}


class Adagrad(Optimizer):
    """lr 0.001, initial_accumulator_value 0.1, epsilon 1e-7."""
    code = P.ADAGRAD
    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)

    def _fill(self, hp):
        hp[P.HP_EPS] = self.epsilon

    def _init_slots(self):
        self.slots[0] = self.initial_accumulator_value

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adagrad": Adagrad}
_BY_CLASS = {c.__name__: c for c in _BY_NAME.values()}


def get(identifier):
    """Optimizer from a name ("adam"), a class name, a class or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _BY_CLASS.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {sorted(_BY_NAME)}")
        return cls()
    raise ValueError(f"Could not interpret optimizer {identifier!r}")


def serialize(opt):
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(config):
    cls = _BY_CLASS.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown optimizer class {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))
