"""Sequential: a stack of layers over one flat parameter buffer."""
import copy

import numpy as np

from .. import layers as layers_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..layers.base import FLOAT32_POLICY, Layer, check_float32, normalize_shape
from ..kernels import program as P
from ..layers.core import InputLayer
from . import data, program, sources, training


class Sequential:
    """``Sequential([layers], name="sequential")``; then ``add``, ``compile``, ``fit``."""
    _defer_build = False    # from_config adds every layer, then builds once (linear in the layers)

    def __init__(self, layers=None, name=None, trainable=True):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Model name must be a non-empty string, got {name!r}")
        self.name = name or "sequential"
        self._layers = []
        self._input_shape = None
        self._params = None
        self._n_trainable = 0
        self._layout = None          # what the flat buffer was packed for
        self._optimizer_layout = None    # the layout the optimizer's slots were built for
        self._programs = {}
        self.optimizer = self.loss = None
        self._metric_ids = []
        self._weighted_metric_ids = []
        self.compiled = False
        self.history = None
        self.stop_training = False
        for layer in layers or []:
            self.add(layer)

    # -- structure -------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("Input must be the first layer of a Sequential model")
            self._input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if not self._defer_build and any(layer is l for l in self._layers):   # from_config's are all new
            raise ValueError(f"Layer {layer.name!r} is already in this model")
        if not self._layers and self._input_shape is None and layer._input_shape_arg is not None:
            self._input_shape = layer._input_shape_arg
        if layer._auto_name:
            layer.name = self._unique_name(layer.name.rsplit("_", 1)[0] if _has_suffix(layer.name) else layer.name)
        elif not self._defer_build and any(l.name == layer.name for l in self._layers):   # from_config: a set
            raise ValueError(f"A layer named {layer.name!r} is already in the model; names must be unique")
        self._layers.append(layer)
        if self._input_shape is not None and not self._defer_build:
            self.build()

    def pop(self):
        if not self._layers:
            raise ValueError("There are no layers to pop")
        layer = self._layers.pop()
        self._layout = None
        return layer

    def _unique_name(self, base):
        taken = {l.name for l in self._layers}
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def build(self, input_shape=None):
        """Builds every layer for per-sample ``input_shape`` (or the declared one).

        Shapes are checked through the whole stack before any layer is built,
        so a shape that does not fit leaves the model as it was."""
        shape = self._input_shape
        if input_shape is not None:
            shape = tuple(input_shape)
            if shape and shape[0] is None:
                shape = shape[1:]
            shape = normalize_shape(shape, "input_shape")
        if shape is None:
            raise ValueError("The model's input shape is unknown; add an Input layer or pass input_shape")
        out = shape
        for layer in self._layers:   # a dry run: checks every shape, builds nothing
            out = layer.build_for(out) if layer.built else tuple(layer.compute_output_shape(out))
        self._input_shape = shape
        for layer in self._layers:
            shape = layer.build_for(shape)
        self._pack()

    @property
    def built(self):
        return self._input_shape is not None and all(l.built for l in self._layers) and bool(self._layers)

    def _pack(self):
        layout = tuple((id(l), l.trainable, tuple(id(w) for w in l.weights)) for l in self._layers)
        if layout != self._layout:
            self._params, self._n_trainable = program.pack(self._layers)
            self._layout = layout
            self._programs = {}

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None, *self._input_shape)

    @property
    def output_shape(self):
        if not self.built:
            return None
        return (None, *self._layers[-1].output_shape)

    def get_layer(self, name=None, index=None):
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Layer index {index} out of range for {len(self._layers)} layers")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: {[l.name for l in self._layers]}")

    # -- weights ---------------------------------------------------------
    @property
    def weights(self):
        return [w for l in self._layers for w in l.weights]

    @property
    def trainable_weights(self):
        return [w for l in self._layers for w in l.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for l in self._layers for w in l.non_trainable_weights]

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        """Writes a list of arrays, one per weight in ``model.weights`` order.

        Everything is checked (count, shapes, finite real values) before
        anything is written, so a rejected call changes nothing."""
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise ValueError(f"set_weights expects a list of arrays (as get_weights returns), "
                             f"got {type(weights).__name__}")
        variables = self.weights
        if len(weights) != len(variables):
            hint = " (the model is not built yet)" if not variables else ""
            raise ValueError(f"Model {self.name!r} has {len(variables)} weight arrays{hint}, got {len(weights)}")
        arrays = []
        for i, (var, arr) in enumerate(zip(variables, weights)):
            try:
                arr = np.asarray(arr)
            except Exception as exc:
                raise ValueError(f"set_weights: weights[{i}] ({var.name!r}) is not an array: {exc}") from None
            if arr.shape != var.shape:
                raise ValueError(f"set_weights: weights[{i}] ({var.name!r}) must have shape {var.shape}, "
                                 f"got {arr.shape}")
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"set_weights: weights[{i}] ({var.name!r}) must hold real numbers, "
                                 f"got dtype {arr.dtype}")
            with np.errstate(over="ignore"):
                finite = np.isfinite(arr.astype(np.float32)).all()
            if not finite:
                raise ValueError(f"set_weights: weights[{i}] ({var.name!r}) contains NaN or inf "
                                 "(after conversion to float32)")
            arrays.append(arr)
        i = 0
        for layer in self._layers:
            layer.set_weights(arrays[i:i + len(layer.weights)])
            i += len(layer.weights)

    def count_params(self):
        return int(sum(l.count_params() for l in self._layers))

    @property
    def trainable(self):
        """False when every layer is frozen; setting it sets every layer's ``trainable``."""
        return any(l.trainable for l in self._layers) if self._layers else True

    @trainable.setter
    def trainable(self, value):
        for layer in self._layers:
            layer.trainable = value

    # -- summary ---------------------------------------------------------
    def summary(self, line_length=65, print_fn=None):
        """Prints Keras's table of layers, output shapes and parameter counts."""
        from ..utils.summary import summary_text
        text = summary_text(self, line_length)
        (print_fn or print)(text)

    # -- compile / train -------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, weighted_metrics=None, **kwargs):
        """``metrics`` are unweighted; ``weighted_metrics`` are weighted by ``fit``'s
        and ``evaluate``'s sample weights (Keras 3). Either holds names, Metric
        objects or functions ``fn(y_true, y_pred) -> per-sample values``.
        Everything is resolved before anything is set, so a rejected call
        leaves the model as it was."""
        unknown = set(kwargs) - {"loss_weights", "run_eagerly", "steps_per_execution", "jit_compile",
                                 "auto_scale_loss"}
        if unknown:
            raise TypeError(f"compile() got unexpected arguments {sorted(unknown)}")
        new_optimizer = optimizers_module.get(optimizer)
        loss_arg, metrics_arg = loss, metrics   # as given, for get_compile_config
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        new_loss = losses_module.get(loss)
        metric_ids = _metric_list(metrics, "metrics")
        weighted_ids = _metric_list(weighted_metrics, "weighted_metrics")
        self.optimizer, self.loss = new_optimizer, new_loss
        self._metric_ids, self._weighted_metric_ids = metric_ids, weighted_ids
        self._loss_arg, self._metrics_arg = loss_arg, metrics_arg
        self.compiled = True

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}()")

    def _resolve_metrics(self, sparse_targets, has_weights=False):
        """A ``metrics.ModelMetrics`` for targets of this kind, with or without sample weights."""
        out_dim = self._layers[-1].output_shape[-1]

        def resolve(ids):
            metrics = [metrics_module.get(m, output_dim=out_dim, target_ndim=1 if sparse_targets else 2)
                       for m in ids]
            # The compiled loop holds either integer labels or dense targets, never both:
            # a built-in metric reading the other kind would silently compare against zeros.
            # (Own metrics run in NumPy on the targets the loss takes.)
            for m in metrics:
                if m.code is None:
                    continue
                if sparse_targets and m.code != P.M_SPARSE_ACC:
                    raise ValueError(f"Metric {m.name!r} needs targets shaped like the outputs, but loss "
                                     f"{self.loss.name!r} takes integer labels; use 'accuracy' or "
                                     "'sparse_categorical_accuracy'")
                if not sparse_targets and m.code == P.M_SPARSE_ACC:
                    raise ValueError(f"Metric {m.name!r} needs integer labels, which only "
                                     "loss='sparse_categorical_crossentropy' takes; use 'accuracy' or "
                                     "'categorical_accuracy'")
            return metrics
        return metrics_module.ModelMetrics(resolve(self._metric_ids), resolve(self._weighted_metric_ids),
                                           has_weights)

    def _ensure_built(self, sample_shape, what):
        """Builds the model, if it is not built yet, for the per-sample shape
        ``sample_shape()`` returns (a call: a producer must read a batch to know it)."""
        if not self._layers:
            raise ValueError("The model has no layers")
        if not self.built:
            sample_shape = sample_shape()
            if sample_shape is None:
                raise ValueError(f"{what} must have shape (samples, *features) to build the model")
            self.build(sample_shape)
        else:
            self._pack()

    def _input_features(self, x, what):
        """``x`` as checked float32 (samples, features), building the model from its shape."""
        arr = data.real_array(x, what)
        self._ensure_built(lambda: arr.shape[1:] if arr.ndim >= 2 else None, what)
        return data.features(arr, self._input_shape, what)

    def _source(self, x, y, loss, steps=None, what="x", y_what="y", steps_what="steps", **weights):
        """``x`` (and, with a ``loss``, targets ``y``) as a bound data source
        (``sources``), building the model from x's shape if needed.
        ``weights``: ``sample_weight``, ``class_weight``, ``sw_what`` for ``sources.make``."""
        src = sources.make(x, y, targets=loss is not None, steps=steps, what=what, y_what=y_what,
                           steps_what=steps_what, **weights)
        self._ensure_built(lambda: src.sample_shape, what)
        return src.bind(self._input_shape, loss, self._layers[-1].output_shape)

    def _program(self, loss):
        key = None if loss is None else (loss.code, loss.from_logits)
        if key not in self._programs:
            self._programs[key] = program.compile_program(self._layers, int(np.prod(self._input_shape)),
                                                          self._params, loss)
        return self._programs[key]

    def _program_for_training(self):
        return self._program(self.loss)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None):
        """Trains for ``epochs``; returns a History whose ``history`` holds floats per epoch.

        ``x``/``y``: arrays (NumPy, memory-mapped NumPy read a chunk at a
        time, or anything ``np.asarray`` takes), or ``x`` alone as a
        generator or ``PyDataset`` yielding ``(x, y)`` or ``(x, y,
        sample_weight)`` batches (then ``steps_per_epoch`` limits an epoch; a
        generator without it runs to its end).
        ``sample_weight`` (n,) weighs each sample's loss (``sum_i w_i l_i / batch``,
        Keras's ``sum_over_batch_size``) and the ``weighted_metrics``;
        ``class_weight`` {class index: weight} does the same per class (not both).
        A NaN/inf loss raises ``fastnn.errors.NonFiniteLossError``; Ctrl-C
        raises ``KeyboardInterrupt`` after the current chunk of steps."""
        self._require_compiled("fit")
        return training.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                            validation_data, shuffle, initial_epoch, steps_per_epoch, class_weight, sample_weight,
                            validation_steps)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, return_dict=False,
                 callbacks=None, steps=None):
        """Loss (a float) with no metrics, else [loss, *metrics]; a dict if ``return_dict``.

        The loss includes weight penalties and is weighted by ``sample_weight``
        (n,) as in ``fit``. ``callbacks`` get the on_test_* hooks. ``x`` may
        also be a generator or PyDataset of ``(x, y)`` batches (``steps`` limits it)."""
        self._require_compiled("evaluate")
        batch_size = data.positive_int(32 if batch_size is None else batch_size, "batch_size")
        verbose = training.resolve_verbose(verbose)
        src = self._source(x, y, self.loss, steps=steps, sample_weight=sample_weight)
        prog = self._program(self.loss)
        metrics = self._resolve_metrics(self.loss.code == P.SCCE, src.weighted)
        cbs = training.callback_list(self, callbacks, verbose, src.steps(batch_size))
        sums, _ = training.run_inference(self, prog, src, batch_size, self.loss, metrics, False, verbose,
                                         self._params, cbs, "test")
        logs = metrics.logs(sums)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None, steps=None):
        """float32 outputs of shape (samples, *output_shape); ``callbacks`` get the
        on_predict_* hooks. ``x`` may also be a generator or PyDataset (batches
        ``x`` or ``(x, y)``; ``steps`` limits it)."""
        batch_size = data.positive_int(32 if batch_size is None else batch_size, "batch_size")
        verbose = training.resolve_verbose(verbose)
        src = self._source(x, None, None, steps=steps)
        prog = self._program(None)
        cbs = training.callback_list(self, callbacks, verbose, src.steps(batch_size))
        _, out = training.run_inference(self, prog, src, batch_size, None, None, True, verbose, self._params,
                                        cbs, "predict")
        return out.reshape((out.shape[0], *self._layers[-1].output_shape))

    def __call__(self, x, training=False):
        return self.predict(x, verbose=0)

    # -- config ----------------------------------------------------------
    def get_config(self):
        """Keras 3's Sequential config: name, trainable, dtype, the layers'
        records (an InputLayer first when the input shape is known) and
        ``build_input_shape`` once built."""
        records = []
        if self._input_shape is not None:
            records.append(layers_module.serialize(InputLayer(shape=self._input_shape)))
        records += [layers_module.serialize(l) for l in self._layers]
        config = {"name": self.name, "trainable": True, "dtype": copy.deepcopy(FLOAT32_POLICY), "layers": records}
        if self.built:
            config["build_input_shape"] = [None, *self._input_shape]
        return config

    @classmethod
    def from_config(cls, config):
        """The model ``get_config`` (fastnn's or Keras's) describes, built when
        the config gives the input shape. Layer classes are looked up in
        fastnn's registry only (``fastnn.layers.deserialize``)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config must be a dict with a 'layers' list")
        check_float32(config.get("dtype"), f"Model {config.get('name')!r}")
        model = cls(name=config.get("name"))
        model._defer_build = True
        for record in config["layers"]:
            model.add(layers_module.deserialize(record))
        del model._defer_build
        names = [layer.name for layer in model._layers]
        if len(set(names)) != len(names):
            duplicate = next(n for i, n in enumerate(names) if n in names[:i])
            raise ValueError(f"A layer named {duplicate!r} is already in the model; names must be unique")
        if model._input_shape is not None and model._layers:
            model.build()
        shape = config.get("build_input_shape")
        if not model.built and model._layers and isinstance(shape, list) and len(shape) >= 2:
            model.build(shape)
        if config.get("trainable") is False:
            for layer in model._layers:
                layer.trainable = False
        return model

    def get_compile_config(self):
        """Keras 3's record of the compile arguments ({} when not compiled)."""
        from ..saving.compile_config import get_compile_config
        return get_compile_config(self)

    def compile_from_config(self, config):
        """Compiles as a Keras 3 compile_config says (names looked up in fastnn's registries)."""
        from ..saving.compile_config import compile_from_config
        compile_from_config(self, config)

    # -- saving ----------------------------------------------------------
    def save(self, filepath, overwrite=True, **kwargs):
        """Writes the model to a Keras 3 ``.keras`` file (atomically); see ``fastnn.saving``."""
        from ..saving import save_model
        _no_kwargs("save", kwargs, ("zipped",))
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Writes the weights and optimizer state to a Keras 3 ``.weights.h5`` file (atomically)."""
        from ..saving import save_weights
        _no_kwargs("save_weights", kwargs, ("max_shard_size",))
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Loads weights (and optimizer state) from a ``.weights.h5`` or ``.keras`` file."""
        from ..saving import load_weights
        _no_kwargs("load_weights", kwargs, ())
        load_weights(self, filepath, skip_mismatch=skip_mismatch)


def _no_kwargs(method, kwargs, ignored_if_none):
    unknown = {k: v for k, v in kwargs.items() if not (k in ignored_if_none and v is None)}
    if unknown:
        raise TypeError(f"{method}() got unsupported arguments {sorted(unknown)}")


def _metric_list(metrics, what):
    """``metrics`` as a list; names are checked now, "accuracy" is resolved at fit time."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise ValueError(f"{what} must be a list of metrics, got {metrics!r}")
    metrics = list(metrics)
    for m in metrics:
        metrics_module.get(m, output_dim=2, target_ndim=1)
    return metrics


def _has_suffix(name):
    base, _, tail = name.rpartition("_")
    return bool(base) and tail.isdigit()
