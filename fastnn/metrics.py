"""Metrics with Keras's names. The accuracies and MSE/MAE/RMSE are means over
samples of a per-sample value, accumulated in compiled code by ``code``
(``program.M_*``). The rest run in NumPy, on the predictions the loop hands
back: ``TopKCategoricalAccuracy``, ``SparseTopKCategoricalAccuracy`` and
``MeanAbsolutePercentageError`` as means of per-sample values, and ``AUC``,
``Precision``, ``Recall`` (``confusion_metrics``) from counts at thresholds.

Calling a metric object on NumPy arrays returns that mean, with the
written-out formula, for users and for tests of the kernels.

Your own metric is any function ``fn(y_true, y_pred) -> per-sample values``
(History's key is ``fn.__name__``) or a ``Metric`` subclass with
``update_state(y_true, y_pred, sample_weight=None)``, ``result()`` and
``reset_state()`` (key: its ``name``). Both run in NumPy (``keras.ops`` work on
the arrays), once per batch as in Keras, on the predictions the compiled loop hands back (the
training-mode outputs, as Keras's metrics see them): ``y_true`` is float32
``(n, outputs)``, or int64 ``(n,)`` labels with a sparse loss, ``y_pred``
float32 ``(n, outputs)``.
"""
import numpy as np

from .kernels import program as P


class Metric:
    """Base class: a weighted mean of ``per_sample`` values (Keras's
    ``update_state``/``result``/``reset_state``), or a subclass's own state."""
    code = None
    default_name = None
    # Whether larger values are better ("up") or worse ("down"); Keras's attribute name.
    _direction = "down"

    def __init__(self, name=None, dtype=None):
        self.name = name or self.default_name or _snake(type(self).__name__)
        self._variables = []
        self._total = 0.0
        self._count = 0.0

    def per_sample(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} defines neither per_sample nor update_state")

    def finish(self, mean):
        """Turns the mean of per-sample values into the reported value."""
        return mean

    def __call__(self, y_true, y_pred):
        return self.finish(float(np.mean(self.per_sample(np.asarray(y_true), np.asarray(y_pred)))))

    # -- Keras's stateful interface ---------------------------------------
    def add_variable(self, shape=(), initializer="zeros", dtype=None, name=None):
        """A state Variable (float32); ``reset_state`` sets it back to zero."""
        from . import initializers
        from .layers.base import Variable
        var = Variable(initializers.get(initializer)(tuple(shape)), name or f"variable_{len(self._variables)}",
                       trainable=False)
        self._variables.append(var)
        return var

    def add_weight(self, name=None, shape=(), initializer="zeros", dtype=None):
        return self.add_variable(shape, initializer, dtype, name)

    @property
    def variables(self):
        return list(self._variables)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds the batch's per-sample values (weighted) to the running mean."""
        values = np.asarray(self.per_sample(np.asarray(y_true), np.asarray(y_pred)), dtype=np.float64)
        n = len(y_pred)
        if values.ndim == 0:
            values = np.full(n, float(values))
        values = values.reshape(n, -1).mean(axis=1)
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(n)
        self._total += float(np.sum(w * values))
        self._count += float(np.sum(w))

    def result(self):
        return self.finish(self._total / self._count) if self._count else 0.0

    def reset_state(self):
        self._total = self._count = 0.0
        for var in self._variables:
            var.value[...] = 0.0

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


class MeanMetricWrapper(Metric):
    """A function ``fn(y_true, y_pred) -> per-sample values`` as a metric
    (weighted mean over samples; values of rank > 1 are first averaged per sample)."""

    def __init__(self, fn, name=None, dtype=None):
        super().__init__(name or getattr(fn, "__name__", None) or "mean_metric_wrapper", dtype)
        self.fn = fn

    def per_sample(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


class Mean(Metric):
    """The (weighted) mean of every value given to ``update_state(values, sample_weight=None)``."""
    default_name = "mean"

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            w = np.ones_like(values)
        else:
            w = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64).reshape(
                np.shape(sample_weight) + (1,) * (values.ndim - np.ndim(sample_weight))), values.shape)
        self._total += float(np.sum(w * values))
        self._count += float(np.sum(w))

    def result(self):
        return np.float32(self._total / self._count) if self._count else np.float32(0.0)


class TopKCategoricalAccuracy(Metric):
    """The share of samples whose one-hot target's class is among the ``k``
    largest predictions (default 5; ties as ``top_k_categorical_accuracy``)."""
    default_name = "top_k_categorical_accuracy"
    _direction = "up"
    needs_dense_targets = True     # compile refuses it with a loss that takes integer labels

    def __init__(self, k=5, name=None, dtype=None):
        super().__init__(name, dtype)
        self.k = _positive_int(k, "k")

    def per_sample(self, y_true, y_pred):
        return top_k_categorical_accuracy(y_true, y_pred, k=self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(Metric):
    """The share of samples whose integer label is among the ``k`` largest
    predictions (default 5). ``from_sorted_ids=True``: ``y_pred`` holds class
    ids sorted by score, and the first ``k`` are compared with the label."""
    default_name = "sparse_top_k_categorical_accuracy"
    _direction = "up"

    def __init__(self, k=5, name=None, dtype=None, from_sorted_ids=False):
        super().__init__(name, dtype)
        self.k = _positive_int(k, "k")
        self.from_sorted_ids = bool(from_sorted_ids)

    def per_sample(self, y_true, y_pred):
        return sparse_top_k_categorical_accuracy(y_true, y_pred, k=self.k, from_sorted_ids=self.from_sorted_ids)

    def get_config(self):
        config = {**super().get_config(), "k": self.k}
        return {**config, "from_sorted_ids": True} if self.from_sorted_ids else config


class MeanAbsolutePercentageError(Metric):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` over outputs, then over samples."""
    default_name = "mean_absolute_percentage_error"
    needs_dense_targets = True

    def per_sample(self, y_true, y_pred):
        return mean_absolute_percentage_error(y_true, y_pred)


# -- function forms: per-sample values (float32), as keras.metrics.<name>(y_true, y_pred) ----------
def _labels(y_true, y_pred):
    y_true = np.asarray(y_true)
    return y_true.reshape(y_true.shape[:-1]) if y_true.ndim == np.ndim(y_pred) else y_true


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the largest prediction is at the integer label, else 0.0."""
    return (np.argmax(y_pred, axis=-1) == _labels(y_true, y_pred)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where the largest prediction and the largest target share a position."""
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """The share of outputs whose thresholded prediction equals the target, per sample."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float32), np.asarray(y_pred, dtype=np.float32)
    return np.mean(((y_pred > threshold).astype(np.float32) == y_true).astype(np.float32), axis=-1)


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true, dtype=np.float32), np.asarray(y_pred, dtype=np.float32)
    return np.mean(np.square(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true, dtype=np.float32), np.asarray(y_pred, dtype=np.float32)
    return np.mean(np.abs(y_pred - y_true), axis=-1)


def squeeze_or_expand(x1, x2, expand_rank_1=True):
    """Keras's ``squeeze_or_expand_to_same_rank``: when the ranks differ by one
    and the longer array's last axis is 1, that axis is dropped (or, for a
    rank-1 partner and ``expand_rank_1``, the partner gains one)."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2[:, None]
        else:
            x1 = x1[..., 0]
    elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1[:, None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def in_top_k(labels, scores, k):
    """``tf.math.in_top_k``: True where fewer than ``k`` scores of the row are
    strictly larger than the label's (so tied scores at the boundary all
    count as in the top k); False for a row with a non-finite score and for a
    label outside [0, classes). ``labels`` (n,), ``scores`` (n, classes)."""
    scores = np.asarray(scores, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"top-k accuracy needs one label per row of scores; got {labels.shape[0]} labels "
                         f"for scores of shape {scores.shape}")
    with np.errstate(invalid="ignore"):
        known = np.isfinite(labels) & (labels >= 0) & (labels < scores.shape[1])
        ids = np.where(known, labels, 0).astype(np.int64)
    target = scores[np.arange(len(ids)), ids]
    larger = np.sum(scores > target[:, None], axis=1)
    return known & np.all(np.isfinite(scores), axis=1) & (larger < k)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the class of the one-hot target (its argmax) is in the top
    ``k`` predictions (``in_top_k``), else 0.0; shape of the targets less the
    last axis."""
    y_pred = np.asarray(y_pred, dtype=np.float32)
    labels = np.argmax(np.asarray(y_true, dtype=np.float32), axis=-1)
    matches = in_top_k(labels.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k)
    return matches.astype(np.float32).reshape(labels.shape)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1.0 where the integer label is in the top ``k`` predictions, else 0.0;
    with ``from_sorted_ids``, where it is among the first ``k`` ids of
    ``y_pred`` (class ids sorted by score). Shape of ``y_true``."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    flat_pred = y_pred.reshape(-1, y_pred.shape[-1])
    if from_sorted_ids:
        matches = np.any(y_true.reshape(-1, 1) == flat_pred[:, :k], axis=1)
    else:
        matches = in_top_k(y_true.reshape(-1), flat_pred, k)
    return matches.astype(np.float32).reshape(y_true.shape)


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 * mean(|(y_true - y_pred) / max(|y_true|, 1e-7)|, axis=-1)``, in float32."""
    y_pred = np.asarray(y_pred, dtype=np.float32)
    y_true = np.asarray(y_true, dtype=np.float32)
    y_true, y_pred = squeeze_or_expand(y_true, y_pred)
    diff = np.abs((y_true - y_pred) / np.maximum(np.abs(y_true), np.float32(1e-7)))
    return np.float32(100.0) * np.mean(diff, axis=-1, dtype=np.float32)


# A function form given to compile runs as its metric class (compiled where it has a code),
# under the function's name.
for _fn, _cls in ((sparse_categorical_accuracy, SparseCategoricalAccuracy), (categorical_accuracy,
                  CategoricalAccuracy), (binary_accuracy, BinaryAccuracy), (mean_squared_error, MeanSquaredError),
                  (mean_absolute_error, MeanAbsoluteError), (top_k_categorical_accuracy, TopKCategoricalAccuracy),
                  (sparse_top_k_categorical_accuracy, SparseTopKCategoricalAccuracy),
                  (mean_absolute_percentage_error, MeanAbsolutePercentageError)):
    _fn.metric_class = _cls
mse, mae, mape = mean_squared_error, mean_absolute_error, mean_absolute_percentage_error


def _snake(name):
    import re
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


# AUC, Precision and Recall need this module's Metric, so they are imported once it exists.
from .confusion_metrics import AUC, Precision, Recall  # noqa: E402

_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
    "auc": AUC, "precision": Precision, "recall": Recall,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
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
    if callable(identifier) and getattr(identifier, "metric_class", None) is not None:
        return identifier.metric_class(name=identifier.__name__)
    if callable(identifier) and not isinstance(identifier, (str, type)):
        return MeanMetricWrapper(identifier)
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            if output_dim == 1:
                cls = BinaryAccuracy
            elif target_ndim == 1:
                cls = SparseCategoricalAccuracy
            else:
                cls = CategoricalAccuracy
            return cls(name=identifier)
        # Keras 3 names a metric given as a string by that string
        # (compile_utils.get_metric): "RootMeanSquaredError" logs as such.
        cls = _BY_NAME.get(identifier) or _BY_CLASS.get(identifier)
        if cls is not None:
            return cls(name=identifier)
        raise ValueError(f"Unknown metric {identifier!r}; expected 'accuracy' or one of {sorted(_BY_NAME)}")
    raise ValueError(f"Could not interpret metric {identifier!r}")


def serialize(metric):
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config):
    cls = _BY_CLASS.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown metric class {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))


class ModelMetrics:
    """A compiled model's metrics, in History's order and with Keras's names.

    ``metrics`` (unweighted) and ``weighted_metrics`` (given sample weights)
    are resolved Metric objects. A built-in metric runs in compiled code when
    it needs no weights (``codes``; its sum sits at ``sums[2 + k]``); own
    metrics, and weighted metrics when there are sample weights, run in NumPy
    (``update``) on the predictions the loop hands back. A repeated name gets
    ``_1``, ``_2``...; a weighted metric whose name is taken is called
    ``weighted_<name>``, as Keras does.
    """

    def __init__(self, metrics, weighted_metrics=(), has_weights=False):
        self.entries = []      # (name, metric, compiled index or None, uses weights)
        taken = {"loss"}
        codes = []

        def unique(name):
            if name not in taken:
                return name
            i = 1
            while f"{name}_{i}" in taken:
                i += 1
            return f"{name}_{i}"

        for weighted, group in ((False, metrics), (True, weighted_metrics)):
            for m in group:
                if not getattr(m, "reports_one_value", True):
                    raise ValueError(f"Metric {m.name!r} reports one value per threshold ({m.thresholds}); History "
                                     "holds one number per metric: compile one metric per threshold instead")
                name = m.name
                if weighted and name in taken:
                    name = "weighted_" + name
                name = unique(name)
                taken.add(name)
                uses_weights = weighted and has_weights
                if m.code is not None and not uses_weights:
                    self.entries.append((name, m, len(codes), False))
                    codes.append(m.code)
                else:
                    self.entries.append((name, m, None, uses_weights))
        self.codes = np.array(codes, dtype=np.int64)
        self.needs_predictions = any(k is None for _, _, k, _ in self.entries)

    def reset(self):
        for _, m, k, _ in self.entries:
            if k is None:
                m.reset_state()

    def update(self, y_true, y_pred, sample_weight=None):
        """Feeds one chunk's targets, predictions and weights to the NumPy metrics."""
        for _, m, k, uses_weights in self.entries:
            if k is None:
                m.update_state(y_true, y_pred, sample_weight=sample_weight if uses_weights else None)

    def logs(self, sums, prefix=""):
        """{"loss": ..., metric names: ...} from the compiled sums and the NumPy metrics."""
        n = max(sums[1], 1.0)
        logs = {prefix + "loss": float(sums[0] / n)}
        for name, m, k, _ in self.entries:
            value = m.finish(sums[2 + k] / n) if k is not None else m.result()
            logs[prefix + name] = float(np.asarray(value, dtype=np.float64))
        return logs


__all__ = ["AUC", "BinaryAccuracy", "CategoricalAccuracy", "MeanAbsoluteError", "MeanAbsolutePercentageError",
           "MeanMetricWrapper", "MeanSquaredError", "Metric", "Precision", "Recall", "RootMeanSquaredError",
           "SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "deserialize",
           "get", "mape", "mean_absolute_percentage_error", "serialize", "sparse_top_k_categorical_accuracy",
           "top_k_categorical_accuracy"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
