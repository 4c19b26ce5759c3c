"""Losses with Keras's names. Each maps to a compiled kernel by ``code``.

Calling a loss object on NumPy arrays ``(y_true, y_pred[, sample_weight])``
returns the loss, computed in NumPy with the written-out Keras formula
(``sum_i w_i * l_i / n``); the training loop computes the same thing in
compiled code. Your own loss: see ``Loss``.
"""
import inspect

import numpy as np

from .kernels import program as P

EPS = 1e-7
# Keras clips probabilities in float32, where 1 - 1e-7 rounds to 1 - 2**-23.
_LOW, _HIGH = float(np.float32(EPS)), float(np.float32(1 - EPS))


class Loss:
    """Base class. ``code`` selects the compiled loss; ``from_logits`` says
    whether ``y_pred`` holds logits (cross-entropies only).

    Your own loss is a subclass with two per-sample functions written in
    Numba's subset of Python (loops, arithmetic, ``math``/NumPy on the rows
    given; plain functions or ``@numba.njit`` ones), so training stays in
    compiled code:

    - ``value(y_true, y_pred, constants) -> float``: the loss of one sample;
    - ``gradient(y_true, y_pred, constants, out)``: writes d value / d y_pred
      into ``out``.

    ``y_true``, ``y_pred`` and ``out`` are float32 1-D arrays of the model's
    output width (targets are dense: one-hot encode class labels);
    ``constants`` is the float32 array of ``self.constants()`` (default empty),
    where a loss keeps its parameters. The batch loss is the mean of the
    per-sample values (weighted by ``sample_weight`` as in Keras), the
    gradient is scaled to match, and ``fit`` compiles the two functions once
    per class (cached on disk like the rest of fastnn). An exception they
    raise (``raise ValueError("...")``) stops ``fit``/``evaluate`` with that
    error. A worked example,
    Huber with its parameter ``delta`` (fastnn's own ``Huber`` is this code)::

        class MyHuber(fastnn.losses.Loss):
            def __init__(self, delta=1.0, name="my_huber"):
                super().__init__(name=name)
                self.delta = delta

            def constants(self):
                return [self.delta]

            def value(y_true, y_pred, constants):          # no self: compiled
                delta, total = constants[0], 0.0
                for j in range(y_pred.shape[0]):
                    e = abs(y_pred[j] - y_true[j])
                    total += 0.5 * e * e if e <= delta else delta * e - 0.5 * delta * delta
                return total / y_pred.shape[0]

            def gradient(y_true, y_pred, constants, out):
                delta, n = constants[0], y_pred.shape[0]
                for j in range(n):
                    e = y_pred[j] - y_true[j]
                    out[j] = (e if abs(e) <= delta else (delta if e > 0 else -delta)) / n

    and a weighted mean squared error, weights per output in the constants::

        class WeightedMSE(fastnn.losses.Loss):
            def __init__(self, weights):
                super().__init__(name="weighted_mse")
                self.weights = list(weights)

            def constants(self):
                return self.weights

            def value(y_true, y_pred, w):
                total = 0.0
                for j in range(y_pred.shape[0]):
                    total += w[j] * (y_pred[j] - y_true[j]) ** 2
                return total / y_pred.shape[0]

            def gradient(y_true, y_pred, w, out):
                for j in range(y_pred.shape[0]):
                    out[j] = 2.0 * w[j] * (y_pred[j] - y_true[j]) / y_pred.shape[0]

    A plain Python function ``loss(y_true, y_pred)`` cannot be used: it would
    have to run in the interpreter for every batch.
    """
    code = None
    default_name = None
    # Keras 3 config keys that fastnn accepts only at this value ({key: value}), unless
    # the class's __init__ takes the key itself.
    keras_fixed = {"dtype": None}
    value = None
    gradient = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = [name for name in ("value", "gradient") if name in cls.__dict__]
        if own:
            if len(own) != 2:
                raise TypeError(f"{cls.__name__} defines {own[0]} but not "
                                f"{({'value', 'gradient'} - set(own)).pop()}; a loss needs both (see fastnn.losses.Loss)")
            cls.code = P.CUSTOM
            cls._callbacks = None

    def __init__(self, name=None, from_logits=False, reduction="sum_over_batch_size"):
        self.name = name or self.default_name or _snake(type(self).__name__)
        self.from_logits = bool(from_logits)
        if reduction != "sum_over_batch_size":
            raise ValueError(f"Only reduction='sum_over_batch_size' is supported, got {reduction!r}")
        self.reduction = reduction

    def constants(self):
        """The float constants handed to ``value``/``gradient`` (own losses)."""
        return ()

    def kernel_functions(self):
        """(value, gradient, constants) for the compiled loops: pointers to the
        compiled functions of an own loss (compiled once per class),
        placeholders otherwise."""
        from .kernels.cpu import sample_loss
        if self.code != P.CUSTOM:
            return (*sample_loss.unused_loss(), np.zeros(0, dtype=np.float32))
        owner = next(c for c in type(self).__mro__ if "value" in c.__dict__)
        if owner.__dict__.get("_callbacks") is None:
            owner._callbacks = sample_loss.compile_loss(owner.value, owner.gradient, owner.__name__)
        consts = np.ascontiguousarray(np.asarray(self.constants(), dtype=np.float32).reshape(-1))
        if not np.all(np.isfinite(consts)):
            raise ValueError(f"{type(self).__name__}.constants() must be finite numbers, got {consts}")
        return (*owner._callbacks, consts)

    def per_sample(self, y_true, y_pred):
        if self.code is None and _own_call(self):       # a Keras 3 subclass: its call, with keras.ops on arrays
            values = np.asarray(self.call(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32)),
                                dtype=np.float64)
            return np.full(len(y_pred), float(values)) if values.ndim == 0 else \
                values.reshape(len(y_pred), -1).mean(axis=1)
        if self.code != P.CUSTOM:
            raise NotImplementedError
        value = type(self).value
        consts = np.asarray(self.constants(), dtype=np.float32).reshape(-1)
        yt = np.ascontiguousarray(y_true, dtype=np.float32).reshape(len(y_pred), -1)
        yp = np.ascontiguousarray(y_pred, dtype=np.float32).reshape(len(y_pred), -1)
        return np.array([value(yt[i], yp[i], consts) for i in range(len(yp))], dtype=np.float64)

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype=np.float64)
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1 and self.code != P.SCCE:
            y_true = y_true[..., None]
        losses = self.per_sample(y_true, y_pred)
        if sample_weight is not None:
            losses = losses * np.asarray(sample_weight, dtype=np.float64).reshape(losses.shape)
        return float(np.mean(losses))

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


def _huber_value(y_true, y_pred, constants):
    delta = constants[0]
    half = np.float32(0.5)
    total = 0.0
    for j in range(y_pred.shape[0]):
        e = y_pred[j] - y_true[j]
        a = abs(e)
        total += half * e * e if a <= delta else delta * a - half * delta * delta
    return total / y_pred.shape[0]


def _huber_gradient(y_true, y_pred, constants, out):
    delta = constants[0]
    n = np.float32(y_pred.shape[0])
    for j in range(y_pred.shape[0]):
        e = y_pred[j] - y_true[j]
        if abs(e) <= delta:
            out[j] = e / n
        else:
            out[j] = (delta if e > 0 else -delta) / n


class Huber(Loss):
    """Keras's Huber loss, mean over outputs of ``0.5 * e^2`` where ``|e| <= delta``
    and ``delta * |e| - 0.5 * delta^2`` elsewhere (``e = y_pred - y_true``).

    Built on the own-loss mechanism of ``Loss`` (``value``/``gradient``
    compiled for the loops) rather than a kernel code of its own: it is the
    mechanism's first user and keeps the loss kernel to the losses whose
    gradients fuse with an activation."""
    default_name = "huber_loss"
    value = staticmethod(_huber_value)
    gradient = staticmethod(_huber_gradient)

    def __init__(self, delta=1.0, name=None, reduction="sum_over_batch_size"):
        super().__init__(name, False, reduction)
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)) or not np.isfinite(delta) \
                or delta < 0:
            raise ValueError(f"Huber delta must be a non-negative number, got {delta!r}")
        self.delta = float(delta)

    def constants(self):
        return (self.delta,)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "delta": self.delta}


_BY_NAME = {
    "huber": Huber,
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


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss (see ``Huber``)."""
    return Huber(delta).per_sample(np.asarray(y_true), np.asarray(y_pred, dtype=np.float64))


huber.loss_class = Huber

_OWN_LOSS_HELP = ("fastnn trains inside compiled code, so an own loss is a fastnn.losses.Loss subclass with "
                  "per-sample value(y_true, y_pred, constants) and gradient(y_true, y_pred, constants, out) "
                  "functions that Numba can compile (see help(fastnn.losses.Loss) for a worked Huber example)")


def get(identifier):
    """Loss object from a name, a class name, a fastnn loss function or a Loss."""
    if isinstance(identifier, Loss):
        if identifier.code is None and _own_call(identifier):
            from .ops.loss import traced       # a Keras 3 Loss subclass: call written with keras.ops
            return traced(identifier)
        if identifier.code is None:
            raise ValueError(f"{type(identifier).__name__} defines neither a compiled kernel nor value/gradient "
                             f"functions; {_OWN_LOSS_HELP}")
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_CLASS.get(identifier)
        if cls is None:
            from .saving.registration import get_registered_object
            own = get_registered_object(identifier)     # the user's, offered by this process (load_model)
            if own is not None and not isinstance(own, str):
                return get(own)
            raise ValueError(f"Unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return get(identifier())
    if callable(identifier) and getattr(identifier, "loss_class", None) is not None:
        return identifier.loss_class()
    if callable(identifier):
        from .ops.loss import traced            # fn(y_true, y_pred) written with keras.ops
        return traced(identifier)
    raise ValueError(f"Could not interpret loss {identifier!r}")


def _own_call(loss):
    return any("call" in klass.__dict__ and not klass.__module__.startswith("fastnn.") for klass in type(loss).__mro__)


def _snake(name):
    import re
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    cls = _BY_CLASS.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown loss class {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))


__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "Huber", "Loss", "MeanAbsoluteError",
           "MeanSquaredError", "SparseCategoricalCrossentropy", "binary_crossentropy",
           "categorical_crossentropy", "deserialize", "get", "huber", "mae", "mean_absolute_error",
           "mean_squared_error", "mse", "serialize", "sparse_categorical_crossentropy"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
