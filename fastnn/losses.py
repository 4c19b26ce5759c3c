"""Losses with Keras's names. Each maps to a compiled kernel by ``code``.

Calling a loss object on NumPy arrays ``(y_true, y_pred)`` returns the mean
loss, computed in NumPy with the written-out Keras formula; the training loop
computes the same thing in compiled code.
"""
import inspect

import numpy as np

from .kernels import program as P

EPS = 1e-7
# Keras clips probabilities in float32, where 1 - 1e-7 rounds to 1 - 2**-23.
_LOW, _HIGH = float(np.float32(EPS)), float(np.float32(1 - EPS))


class Loss:
    """Base class. ``code`` selects the compiled loss; ``from_logits`` says
    whether ``y_pred`` holds logits (cross-entropies only)."""
    code = None
    default_name = None
    # Keras 3 config keys that fastnn accepts only at this value ({key: value}), unless
    # the class's __init__ takes the key itself.
    keras_fixed = {"dtype": None}

    def __init__(self, name=None, from_logits=False, reduction="sum_over_batch_size"):
        self.name = name or self.default_name
        self.from_logits = bool(from_logits)
        if reduction != "sum_over_batch_size":
            raise ValueError(f"Only reduction='sum_over_batch_size' is supported, got {reduction!r}")
        self.reduction = reduction

    def per_sample(self, y_true, y_pred):
        raise NotImplementedError

    def __call__(self, y_true, y_pred):
        return float(np.mean(self.per_sample(np.asarray(y_true), np.asarray(y_pred, dtype=np.float64))))

    def get_config(self):
        """Keras 3's loss config."""
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config):
        """The loss for ``config`` (fastnn's or Keras's); options fastnn lacks are refused."""
        config = dict(config)
        if config.get("dtype") == "float32":
            config.pop("dtype")
        takes = inspect.signature(cls.__init__).parameters
        for key, value in {**Loss.keras_fixed, **cls.keras_fixed}.items():
            if key in config and key not in takes and config.pop(key) != value:
                raise ValueError(f"Loss {cls.__name__}: fastnn supports only {key}={value!r}")
        try:
            return cls(**config)
        except TypeError as e:
            raise ValueError(f"Loss {cls.__name__}: {e}") from None


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class MeanSquaredError(Loss):
    code = P.MSE
    default_name = "mean_squared_error"

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        super().__init__(name, False, reduction)

    def per_sample(self, y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2, axis=-1)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


class MeanAbsoluteError(MeanSquaredError):
    code = P.MAE
    default_name = "mean_absolute_error"

    def per_sample(self, y_true, y_pred):
        return np.mean(np.abs(y_pred - y_true), axis=-1)


class CategoricalCrossentropy(Loss):
    """One-hot (or soft) targets of shape (n, classes)."""
    code = P.CCE
    default_name = "categorical_crossentropy"
    keras_fixed = {"label_smoothing": 0.0, "axis": -1}

    def get_config(self):
        return {**super().get_config(), "label_smoothing": 0.0, "axis": -1}

    def per_sample(self, y_true, y_pred):
        if self.from_logits:
            return -np.sum(y_true * _log_softmax(y_pred), axis=-1)
        q = y_pred / y_pred.sum(axis=-1, keepdims=True)
        return -np.sum(y_true * np.log(np.clip(q, _LOW, _HIGH)), axis=-1)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Integer class targets of shape (n,)."""
    code = P.SCCE
    default_name = "sparse_categorical_crossentropy"
    keras_fixed = {"ignore_class": None, "axis": -1}

    def get_config(self):
        return {**Loss.get_config(self), "ignore_class": None}

    def per_sample(self, y_true, y_pred):
        labels = np.asarray(y_true).reshape(-1).astype(np.int64)
        return super().per_sample(np.eye(y_pred.shape[-1])[labels], y_pred)


class BinaryCrossentropy(Loss):
    """0/1 (or multi-label) targets, mean over outputs."""
    code = P.BCE
    default_name = "binary_crossentropy"
    keras_fixed = {"label_smoothing": 0.0, "axis": -1}

    def get_config(self):
        return {**super().get_config(), "label_smoothing": 0.0, "axis": -1}

    def per_sample(self, y_true, y_pred):
        if self.from_logits:
            x = y_pred
            return np.mean(np.maximum(x, 0) - x * y_true + np.log1p(np.exp(-np.abs(x))), axis=-1)
        p = np.clip(y_pred, _LOW, _HIGH)
        return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p), axis=-1)


_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
}
_BY_CLASS = {c.__name__: c for c in _BY_NAME.values()}


def _function(cls, name):
    def fn(y_true, y_pred):
        return cls().per_sample(np.asarray(y_true), np.asarray(y_pred, dtype=np.float64))
    fn.__name__ = name
    fn.loss_class = cls
    return fn


mean_squared_error = mse = _function(MeanSquaredError, "mean_squared_error")
mean_absolute_error = mae = _function(MeanAbsoluteError, "mean_absolute_error")
categorical_crossentropy = _function(CategoricalCrossentropy, "categorical_crossentropy")
sparse_categorical_crossentropy = _function(SparseCategoricalCrossentropy, "sparse_categorical_crossentropy")
binary_crossentropy = _function(BinaryCrossentropy, "binary_crossentropy")


def get(identifier):
    """Loss object from a name, a class name, a fastnn loss function or a Loss."""
    if isinstance(identifier, Loss):
        if identifier.code is None:
            raise ValueError(f"{type(identifier).__name__} has no compiled kernel (code is None)")
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_CLASS.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return get(identifier())
    if callable(identifier) and getattr(identifier, "loss_class", None) is not None:
        return identifier.loss_class()
    if callable(identifier):
        raise ValueError(
            f"loss={identifier!r} is a plain Python callable; fastnn trains inside compiled code, so a "
            "custom loss must be a fastnn.losses.Loss subclass with a compiled kernel")
    raise ValueError(f"Could not interpret loss {identifier!r}")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    cls = _BY_CLASS.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown loss class {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))
