"""scikit-learn estimators around fastnn models, with Keras 3.15's constructor.

``SKLearnClassifier(model, warm_start=False, model_kwargs=None, fit_kwargs=None)``
(and ``SKLearnRegressor``, ``SKLearnTransformer``) behave as scikit-learn
expects: ``clone``, ``get_params``/``set_params`` (also nested, as
``"sklearnclassifier__model_kwargs"`` in a pipeline), ``Pipeline``,
``cross_validate``, ``GridSearchCV``, ``predict_proba``, ``score``, any class
labels. A fitted wrapper pickles (its model goes through the ``.keras`` format
in memory), so joblib and Dask can run the fits in other processes.

Differences from Keras's wrappers, each where Keras's would fail a scikit-learn
convention or the builder in fastnn's README:

- the builder receives ``X`` and ``y`` only when its signature takes them (or
  ``**kwargs``), so ``def build(hidden=30, lr=1e-3)`` works as well as Keras's
  ``def build(X, y, ...)``;
- a classifier trains on the targets its loss takes: integer labels for
  ``sparse_categorical_crossentropy``, a 0/1 column for a single output
  (sigmoid with ``binary_crossentropy``), one-hot rows otherwise (Keras always
  one-hot encodes, which sparse cross-entropy cannot read);
- ``predict_proba`` exists, (n, n_classes) probabilities; ``decision_function``
  is (n,) for two classes (scikit-learn's convention), not the raw outputs;
- ``fit_kwargs`` is never modified by ``fit`` (Keras updates it in place) and
  ``clone`` keeps it (Keras's ``__sklearn_clone__`` drops it).

Reproducibility: weights and shuffling draw from fastnn's generator, so seed
it in the builder (``keras.utils.set_random_seed(seed)`` before making the
layers); then a fit gives the same model in any process, e.g. on any Dask
worker, provided the Numba thread count is the same (see ``fastnn.config``).
"""
import inspect

import numpy as np

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
except ImportError:     # the classes can be named without scikit-learn; using them says what to install
    sklearn = None

    class BaseEstimator:
        pass

    class ClassifierMixin:
        pass

    class RegressorMixin:
        pass

    class TransformerMixin:
        pass


_INSTALL_HINT = 'pip install "fastnn[distributed]" (or: pip install scikit-learn)'


class SKLBase(BaseEstimator):
    """Base of the scikit-learn wrappers.

    Args:
        model: a compiled fastnn model, or a callable returning one (a
            "builder"). A model is cloned (``keras.models.clone_model``: same
            architecture and compile settings, new weights) before each fit
            unless ``warm_start``. A builder is called at each fit with
            ``**model_kwargs``, plus ``X=`` (n, *features) and ``y=`` (the
            targets as the model sees them: one-hot (n, n_classes) for a
            classifier, (n, outputs) for a regressor) when it takes them.
        warm_start: bool, default False. Reuse the model of the previous fit
            (or the given model itself) and continue training it.
        model_kwargs: dict or None, default None. Keyword arguments for the builder.
        fit_kwargs: dict or None, default None. Keyword arguments for
            ``model.fit`` (``epochs``, ``batch_size``, ``verbose``, ...);
            those given to the wrapper's ``fit`` take precedence.

    Attributes (after ``fit``):
        model_: the fitted model.
        history_: dict, ``model.fit``'s ``History.history`` of the last fit.
        n_features_in_: int, number of features seen in ``fit``.
    """

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
        if sklearn is None:
            raise ImportError(f"{type(self).__name__} needs scikit-learn: {_INSTALL_HINT}")
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True   # unseeded fits draw new weights and batches
        return tags

    @property
    def epoch_(self):
        """Number of epochs run by the last ``fit``."""
        return len(next(iter(getattr(self, "history_", {}).values()), []))

    # -- fitting ---------------------------------------------------------
    def fit(self, X, y, sample_weight=None, **kwargs):
        """Fits a new (or, with ``warm_start``, the previous) model.

        Args:
            X: array-like (n_samples, n_features) (or (n_samples, *shape)).
            y: array-like (n_samples,) (or (n_samples, n_outputs) for regressors).
            sample_weight: array-like (n_samples,) or None, passed to ``model.fit``.
            **kwargs: more ``model.fit`` arguments, over ``fit_kwargs``.

        Returns:
            self
        """
        from sklearn.utils.validation import _check_sample_weight, validate_data
        X, y = validate_data(self, X, y, allow_nd=True, dtype=(np.float64, np.float32), **self._y_checks())
        seen = self._encode_target(y, reset=True)
        model = self._get_model(X, seen)
        _check_model(model)
        fit_kwargs = {**_dict(self.fit_kwargs, "fit_kwargs"), **kwargs}
        if sample_weight is not None:
            fit_kwargs["sample_weight"] = _check_sample_weight(sample_weight, X)
        history = model.fit(X, self._training_target(model, X, y, seen), **fit_kwargs)
        self.model_ = model
        self.history_ = dict(getattr(history, "history", None) or {})
        return self

    def _y_checks(self):
        return {"y_numeric": True, "multi_output": True}

    def _get_model(self, X, y):
        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if _is_model(self.model):
            if self.warm_start:
                return self.model
            from ..models.cloning import clone_model
            return clone_model(self.model)
        if not callable(self.model):
            raise TypeError(f"model must be a compiled fastnn model or a callable returning one, "
                            f"got {type(self.model).__name__}")
        model = _call_builder(self.model, X, y, _dict(self.model_kwargs, "model_kwargs"))
        if not _is_model(model):
            raise TypeError(f"The model builder {getattr(self.model, '__name__', self.model)!r} must return a "
                            f"compiled fastnn model, got {type(model).__name__}")
        return model

    def _encode_target(self, y, reset=False):
        """The targets as the builder sees them: (n, outputs)."""
        if reset:
            self._y_ndim = np.ndim(y)
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _training_target(self, model, X, y, seen):
        return seen

    # -- predicting ------------------------------------------------------
    def _outputs(self, X):
        from sklearn.utils.validation import check_is_fitted, validate_data
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, allow_nd=True, dtype=(np.float64, np.float32))
        return self.model_.predict(X, verbose=0)

    def predict(self, X):
        """Model outputs for ``X`` as float64 (scikit-learn's regressors' dtype): (n_samples,)
        when fitted on 1-D targets, else (n_samples, n_outputs)."""
        out = self._outputs(X).astype(np.float64)
        return out[:, 0] if self._y_ndim == 1 and out.ndim == 2 and out.shape[1] == 1 else out


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """scikit-learn classifier around a fastnn model (see ``SKLBase`` for the arguments).

    Labels may be any sortable values (strings, integers, ...); ``classes_``
    holds them sorted, and the model's output ``j`` stands for ``classes_[j]``.
    The model needs one output per class (softmax), or a single sigmoid output
    for two classes. It trains on integer labels 0..n_classes-1 when its loss
    is ``sparse_categorical_crossentropy``, on a 0/1 column when it has one
    output, on one-hot rows otherwise.

    Attributes (after ``fit``): ``classes_`` (n_classes,), ``model_``,
    ``history_``, ``n_features_in_``.

    Example::

        def build(hidden=30, lr=1e-3):
            model = keras.Sequential([keras.layers.Dense(hidden, activation="relu"),
                                      keras.layers.Dense(3, activation="softmax")])
            model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
            return model

        clf = keras.wrappers.SKLearnClassifier(build, fit_kwargs={"epochs": 20, "verbose": 0})
        clf.fit(X, y).predict_proba(X)      # (n, 3)
    """

    def _y_checks(self):
        return {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True      # a few epochs on tiny check data
        tags.classifier_tags.multi_class = True
        return tags

    def _encode_target(self, y, reset=False):
        from sklearn.utils.multiclass import check_classification_targets, type_of_target
        check_classification_targets(y)     # "Unknown label type" for continuous targets
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"SKLearnClassifier takes binary or multiclass targets of shape (n_samples,), "
                             f"got {kind} targets")
        if reset:
            self.classes_ = np.unique(y)
            self._y_ndim = 1
            if len(self.classes_) < 2:
                raise ValueError(f"SKLearnClassifier needs at least 2 classes in y, got one class: "
                                 f"{self.classes_[0]!r}")
        return np.eye(len(self.classes_), dtype=np.float32)[np.searchsorted(self.classes_, y)]   # as in Keras

    def _training_target(self, model, X, y, onehot):
        from ..losses import SparseCategoricalCrossentropy
        width = _output_width(model, X)
        n_classes = len(self.classes_)
        labels = np.searchsorted(self.classes_, y)
        if isinstance(_loss(model), SparseCategoricalCrossentropy):
            if width != n_classes:
                raise ValueError(f"The model has {width} outputs but y has {n_classes} classes; "
                                 "sparse_categorical_crossentropy needs one output per class")
            return labels
        if width == 1 and n_classes == 2:
            return labels.astype(np.float32).reshape(-1, 1)
        if width != n_classes:
            raise ValueError(f"The model has {width} outputs but y has {n_classes} classes "
                             f"({self.classes_[:10].tolist()}); give it one output per class, or one sigmoid "
                             "output for two classes")
        return onehot

    def _from_logits(self):
        return bool(getattr(_loss(self.model_), "from_logits", False))

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns in ``classes_`` order.

        Outputs of a loss with ``from_logits=True`` go through softmax (or the
        sigmoid for a single output); a single output p gives columns (1 - p, p)."""
        out = self._outputs(X)
        out = out.reshape(out.shape[0], -1).astype(np.float64)
        if out.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-out[:, 0])) if self._from_logits() else out[:, 0]
            return np.column_stack([1.0 - p, p])
        if self._from_logits():
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out

    def predict(self, X):
        """Class labels (n_samples,), values from ``classes_``."""
        proba = self.predict_proba(X)     # first: it raises NotFittedError before classes_ is read
        return self.classes_[proba.argmax(axis=1)]

    def decision_function(self, X):
        """Scores: (n_samples,) for two classes, positive where ``predict``
        gives ``classes_[1]`` (the difference of the two outputs, or the single
        output less its threshold: 0.5 for a probability, 0 for a logit);
        the raw outputs (n_samples, n_classes) for more classes."""
        out = self._outputs(X)
        out = out.reshape(out.shape[0], -1).astype(np.float64)
        if out.shape[1] == 1:
            return out[:, 0] - (0.0 if self._from_logits() else 0.5)
        if out.shape[1] == 2:
            return out[:, 1] - out[:, 0]
        return out


class SKLearnRegressor(RegressorMixin, SKLBase):
    """scikit-learn regressor around a fastnn model (see ``SKLBase`` for the arguments).

    ``y`` is (n_samples,) or (n_samples, n_outputs); the model trains on it as
    (n_samples, n_outputs) and ``predict`` returns the shape ``y`` had.
    ``score`` is R^2."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        tags.target_tags.multi_output = True
        return tags


class SKLearnTransformer(TransformerMixin, SKLBase):
    """scikit-learn transformer whose ``transform`` is the fitted model's
    outputs (e.g. an embedding), after a supervised ``fit(X, y)`` as the
    regressor's (see ``SKLBase`` for the arguments)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []    # always float32 outputs
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        return tags

    def transform(self, X):
        """The model's outputs, (n_samples, *output_shape) float32."""
        return self._outputs(X)


# -- helpers -------------------------------------------------------------------
def _is_model(obj):
    # Duck-typed: any fastnn model class (Sequential, functional Model, ...) has these.
    return not isinstance(obj, type) and all(hasattr(obj, a) for a in ("fit", "predict", "get_config", "compile"))


def _check_model(model):
    if not getattr(model, "compiled", False) or model.loss is None or model.optimizer is None:
        raise RuntimeError("The model must be compiled with a loss and an optimizer before the wrapper fits "
                           "it: call model.compile(...) (in the builder, if you pass one)")


def _dict(value, name):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")
    return value


def _call_builder(builder, X, y, kwargs):
    """``builder(**kwargs)``, with ``X=`` and ``y=`` when its signature takes them."""
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):     # no signature to read (some builtins): pass them, as Keras does
        params = None
    takes_all = params is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    data = {k: v for k, v in (("X", X), ("y", y)) if takes_all or k in params}
    return builder(**data, **kwargs)


def _loss(model):
    """The model's loss object. A model compiled before it was built holds the loss as
    given to compile (a name, ...) until its first fit resolves it."""
    from .. import losses
    loss = model.loss
    if isinstance(loss, (list, tuple, dict)):
        raise ValueError("The scikit-learn wrappers take models with one output and one loss, got the losses "
                         f"{loss!r}")
    return loss if isinstance(loss, losses.Loss) else losses.get(loss)


def _output_width(model, X):
    """The model's number of outputs per sample, building it for X first if needed."""
    shape = getattr(model, "output_shape", None)
    if shape is None:
        model.build((None, *X.shape[1:]))
        shape = model.output_shape
    return int(np.prod(shape[1:]))
