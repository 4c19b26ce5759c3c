"""Weight initializers with Keras 3's names, defaults and formulas.

Each is a callable ``init(shape) -> float32 array`` drawing from fastnn's
generator, so ``fastnn.utils.set_random_seed`` makes them repeatable. Fans
for a Dense kernel of shape ``(fan_in, fan_out)``.
"""
import math

import numpy as np

from .utils.seeding import rng


def _fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    # Keras config keys that fastnn accepts only at this value ({key: value}).
    keras_fixed = {}

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key, value in cls.keras_fixed.items():
            if key in config and config.pop(key) != value:
                raise ValueError(f"Initializer {cls.__name__}: fastnn supports only {key}={value!r}")
        try:
            return cls(**config)
        except TypeError as e:
            raise ValueError(f"Initializer {cls.__name__}: {e}") from None


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=np.float32)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = float(mean), float(stddev), seed

    def __call__(self, shape, dtype=None):
        g = np.random.default_rng(self.seed) if self.seed is not None else rng()
        return g.normal(self.mean, self.stddev, size=shape).astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = float(minval), float(maxval), seed

    def __call__(self, shape, dtype=None):
        g = np.random.default_rng(self.seed) if self.seed is not None else rng()
        return g.uniform(self.minval, self.maxval, size=shape).astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: variance ``scale / n`` with n the fan chosen by
    ``mode``; "truncated_normal" cuts at two standard deviations and rescales
    by 0.8796... so the variance is kept; "uniform" draws from +-sqrt(3 scale/n)."""
    keras_fixed = {"input_axes": None, "output_axes": None}

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be fan_in, fan_out or fan_avg, got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"Unknown distribution {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = float(scale), mode, distribution, seed

    def __call__(self, shape, dtype=None):
        g = np.random.default_rng(self.seed) if self.seed is not None else rng()
        fan_in, fan_out = _fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return g.uniform(-limit, limit, size=shape).astype(np.float32)
        if self.distribution == "untruncated_normal":
            return g.normal(0.0, math.sqrt(var), size=shape).astype(np.float32)
        std = math.sqrt(var) / 0.87962566103423978
        out = g.normal(0.0, std, size=shape)
        bad = np.abs(out) > 2 * std
        while bad.any():
            out[bad] = g.normal(0.0, std, size=int(bad.sum()))
            bad = np.abs(out) > 2 * std
        return out.astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "input_axes": None, "output_axes": None}


class Orthogonal(Initializer):
    """Keras 3's Orthogonal: the Q of the QR decomposition of a normal draw of
    shape (max(rows, cols), min(rows, cols)), its columns' signs fixed by R's
    diagonal, transposed when rows < cols, times ``gain``; rows = the product
    of all dimensions but the last (LSTM/GRU/SimpleRNN recurrent kernels)."""

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = float(gain), seed

    def __call__(self, shape, dtype=None):
        g = np.random.default_rng(self.seed) if self.seed is not None else rng()
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializer needs a shape of at least 2 dimensions, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(g.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "gain": self.gain}


def _variant(name, scale, mode, distribution):
    class _Init(VarianceScaling):
        def __init__(self, seed=None):
            super().__init__(scale, mode, distribution, seed)

        def get_config(self):
            return {"seed": self.seed, "input_axes": None, "output_axes": None}
    _Init.__name__ = _Init.__qualname__ = name
    return _Init


GlorotUniform = _variant("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variant("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variant("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variant("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variant("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variant("LecunNormal", 1.0, "fan_in", "truncated_normal")

_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_normal": RandomNormal, "random_uniform": RandomUniform,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "variance_scaling": VarianceScaling, "orthogonal": Orthogonal,
}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier):
    """Initializer from a name ("glorot_uniform"), a class name, a config dict or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _BY_CLASS.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown initializer {identifier!r}; expected one of {sorted(_BY_NAME)}")
        return cls()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        return _BY_CLASS[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"Could not interpret initializer {identifier!r}")


def serialize(init):
    """Keras 3's record of an initializer."""
    return {"module": "keras.initializers", "class_name": type(init).__name__, "config": init.get_config(),
            "registered_name": None}


__all__ = ["Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Initializer",
           "LecunNormal", "LecunUniform", "Ones", "RandomNormal", "RandomUniform", "VarianceScaling",
           "Zeros", "get", "serialize"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
