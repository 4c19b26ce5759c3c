"""Metrics with Keras's names; each is a mean over samples of a per-sample
value, accumulated in compiled code by ``code`` (``program.M_*``).

Calling a metric object on NumPy arrays returns that mean, with the
written-out formula, for users and for tests of the kernels.
"""
import numpy as np

from .kernels import program as P


class Metric:
    code = None
    default_name = None
    # Whether larger values are better ("up") or worse ("down"); Keras's attribute name.
    _direction = "down"

    def __init__(self, name=None, dtype=None):
        self.name = name or self.default_name

    def per_sample(self, y_true, y_pred):
        raise NotImplementedError

    def finish(self, mean):
        """Turns the mean of per-sample values into the reported value."""
        return mean

    def __call__(self, y_true, y_pred):
        return self.finish(float(np.mean(self.per_sample(np.asarray(y_true), np.asarray(y_pred)))))

    def get_config(self):
        """Keras 3's metric config."""
        return {"name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        if config.get("dtype") not in (None, "float32"):
            raise ValueError(f"Metric {cls.__name__}: dtype {config['dtype']!r} is not supported "
                             "(fastnn computes metrics in float32)")
        try:
            return cls(**config)
        except TypeError as e:
            raise ValueError(f"Metric {cls.__name__}: {e}") from None


class SparseCategoricalAccuracy(Metric):
    code = P.M_SPARSE_ACC
    default_name = "sparse_categorical_accuracy"
    _direction = "up"

    def per_sample(self, y_true, y_pred):
        return (np.argmax(y_pred, axis=-1) == np.asarray(y_true).reshape(-1)).astype(np.float64)


class CategoricalAccuracy(Metric):
    code = P.M_CAT_ACC
    default_name = "categorical_accuracy"
    _direction = "up"

    def per_sample(self, y_true, y_pred):
        return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float64)


class BinaryAccuracy(Metric):
    """Threshold 0.5 on predictions, mean over outputs."""
    code = P.M_BIN_ACC
    default_name = "binary_accuracy"
    _direction = "up"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        if threshold != 0.5:
            raise ValueError("BinaryAccuracy supports threshold=0.5 only")
        super().__init__(name, dtype)

    def get_config(self):
        return {**super().get_config(), "threshold": 0.5}

    def per_sample(self, y_true, y_pred):
        return np.mean(((y_pred > 0.5).astype(np.float64) == y_true).astype(np.float64), axis=-1)


class MeanSquaredError(Metric):
    code = P.M_MSE
    default_name = "mean_squared_error"

    def per_sample(self, y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2, axis=-1)


class MeanAbsoluteError(Metric):
    code = P.M_MAE
    default_name = "mean_absolute_error"

    def per_sample(self, y_true, y_pred):
        return np.mean(np.abs(y_pred - y_true), axis=-1)


class RootMeanSquaredError(MeanSquaredError):
    code = P.M_RMSE
    default_name = "root_mean_squared_error"

    def finish(self, mean):
        return float(np.sqrt(mean))


_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
}
_BY_CLASS = {c.__name__: c for c in _BY_NAME.values()}


def get(identifier, loss=None, output_dim=None, target_ndim=None):
    """Metric object for a name, class, or instance.

    "accuracy"/"acc" is resolved as Keras 3 does, from the shapes: one
    output unit gives binary accuracy; integer targets (rank lower than the
    output's, or last dimension 1 against several outputs) sparse
    categorical accuracy; otherwise categorical accuracy. The metric keeps
    the name the user wrote, so History says "accuracy".
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            if output_dim == 1:
                cls = BinaryAccuracy
            elif target_ndim == 1:
                cls = SparseCategoricalAccuracy
            else:
                cls = CategoricalAccuracy
            return cls(name=identifier)
        cls = _BY_NAME.get(identifier)
        if cls is not None:
            # Names that Keras resolves to a function keep the string as their name.
            return cls(name=identifier if identifier in ("mse", "mae") else None)
        cls = _BY_CLASS.get(identifier)
        if cls is not None:
            return cls()
        raise ValueError(f"Unknown metric {identifier!r}; expected 'accuracy' or one of {sorted(_BY_NAME)}")
    raise ValueError(f"Could not interpret metric {identifier!r}")


def serialize(metric):
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config):
    cls = _BY_CLASS.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown metric class {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))
