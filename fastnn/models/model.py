"""Model: what every fastnn model does, whatever its structure.

A model is a graph of layer calls (``layers.node``) over one flat parameter
buffer. ``Functional`` models take the graph from ``keras.Model(inputs,
outputs)``, ``Sequential`` builds a chain, and a subclass of ``Model`` with
its own ``call`` is traced once on symbolic inputs (``functional``). This
class holds what they share: weights, compile, fit / evaluate / predict,
saving. Structure comes from ``_graph()``: (input tensors, layer calls in
order, output tensors).
"""

import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..kernels import program as P
from ..layers.node import flatten, model_layer
from . import data, program, sources, training
from . import training as _training     # __call__'s argument "training" hides the module there
from .outputs import ModelIO, OutputMetrics


class Model:
    """``keras.Model``: ``Model(inputs, outputs, name=None)`` builds a
    functional model; a subclass defining ``call`` is a subclassed model.
    Then ``compile``, ``fit``, ``evaluate``, ``predict``, ``save``."""

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            # Python then runs Functional.__init__ on it once (it is a Model)
            from .functional import Functional
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name=None, trainable=True, **kwargs):
        unknown = set(kwargs) - {"dtype"}
        if unknown:
            raise TypeError(f"Model() got unexpected arguments {sorted(unknown)}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Model name must be a non-empty string, got {name!r}")
        self.name = name or self._default_name()
        self._params = None
        self._n_trainable = 0
        self._layout = None          # what the flat buffer was packed for
        self._optimizer_layout = None    # the layout the optimizer's slots were built for
        self._programs = {}
        self.optimizer = self.loss = None
        self._losses = None          # per output
        self._loss_weights = None
        self._output_metric_ids = []        # per output: lists of metric identifiers
        self._output_weighted_metric_ids = []
        self._metric_ids = self._weighted_metric_ids = []
        self.compiled = False
        self._resolved_for = None    # the outputs the compile arguments were resolved for
        self.history = None
        self.stop_training = False
        self._inbound_nodes = []

    def _default_name(self):
        """Keras 3 names a model as a layer: its class in snake case, numbered across the session."""
        from ..layers.base import snake_case, unique_name
        return unique_name(snake_case(type(self).__name__))

    # -- structure -------------------------------------------------------
    # Functional and Sequential override these; here is the subclassed model:
    # ``call`` traced once, on symbolic inputs shaped like the first data it
    # sees (or ``build(input_shape)``), into a graph of layer calls.
    def call(self, inputs):
        raise NotImplementedError(f"{type(self).__name__} defines no call(); subclass keras.Model with a call "
                                  "method, or use keras.Model(inputs, outputs) or keras.Sequential")

    _graph_parts = None
    _traced = True      # a subclassed model: built by tracing call

    @property
    def built(self):
        return self._graph_parts is not None

    def build(self, input_shape):
        """Traces ``call`` for inputs of ``input_shape`` ((None, *features), or a list of them)."""
        from ..layers.core import Input
        if type(self).call is Model.call:
            raise NotImplementedError(f"{type(self).__name__} defines no call(); subclass keras.Model with a call "
                                      "method, or use keras.Model(inputs, outputs) or keras.Sequential")
        shapes = input_shape if isinstance(input_shape, list) and input_shape and \
            isinstance(input_shape[0], (list, tuple)) else [input_shape]
        inputs = [Input(shape=tuple(s)[1:] if len(s) and s[0] is None else tuple(s)) for s in shapes]
        self._trace(inputs[0] if len(inputs) == 1 and not (isinstance(input_shape, list) and
                                                          isinstance(input_shape[0], (list, tuple)))
                    else inputs)

    def _trace_for(self, x):
        """Traces ``call`` on symbolic inputs shaped like the data ``x`` (an
        array, or a list/tuple/dict of arrays)."""
        from ..layers.core import Input
        if isinstance(x, dict):
            self._trace({k: Input(shape=np.shape(v)[1:], name=k) for k, v in x.items()})
        elif isinstance(x, (list, tuple)) and x and isinstance(x[0], np.ndarray):
            self._trace([Input(shape=np.shape(v)[1:]) for v in x])
        else:
            arr = np.asarray(x)
            if arr.ndim < 2:
                raise ValueError(f"x must have shape (samples, *features) to build model {self.name!r}, "
                                 f"got {arr.shape}")
            self._trace(Input(shape=arr.shape[1:]))

    def _trace(self, inputs):
        from .functional import walk
        self.__dict__.pop("_added_losses", None)      # add_loss in call: this trace's terms only
        try:
            outputs = self.call(inputs)
        except TypeError as exc:
            raise TypeError(f"Tracing {type(self).__name__}.call on symbolic inputs failed: {exc}. fastnn traces "
                            "call once into a graph of layer calls and keras.ops, so call may only compose layers "
                            "and keras.ops on its inputs: no NumPy on the values and no Python branches on them") \
                from None
        if not flatten(outputs):
            raise TypeError(f"{type(self).__name__}.call returned {outputs!r}, not tensors made by layers")
        in_list, out_list = flatten(inputs), flatten(outputs)
        self._graph_parts = (in_list, walk(in_list, out_list), out_list)
        self._pack()

    def _graph(self):
        if self._graph_parts is None:
            raise ValueError(f"Model {self.name!r} is not built yet: call it on data (fit, predict) or call "
                             "build(input_shape) first")
        return self._graph_parts

    @property
    def layers(self):
        """The layers assigned as attributes of the model, in assignment order (as Keras tracks them)."""
        from ..layers.base import Layer
        return [v for v in vars(self).values() if isinstance(v, Layer)]

    def _all_layers(self):
        """The layers ``call`` uses: the model's attributes in assignment order (so
        ``weights`` follow Keras's order), then layers made inside ``call``."""
        if self._graph_parts is None:
            return self.layers
        used = {}
        for node in self._graph_parts[1]:
            layer = model_layer(node)       # the own layer a traced op belongs to; None for a hidden op
            if layer is not None:
                used.setdefault(id(layer), layer)
        out = [l for l in self.layers if id(l) in used]
        attributes = {id(l) for l in out}
        return out + [l for k, l in used.items() if k not in attributes]

    def get_config(self):
        """Keras's base config of a subclassed model."""
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        """``keras.Model.from_config``: a functional config (with ``layers``,
        ``input_layers``, ``output_layers``) gives a functional model; any
        other config is passed to ``cls(**config)``."""
        from .functional import Functional
        if isinstance(config, dict) and {"layers", "input_layers", "output_layers"} <= set(config) and \
                (cls is Model or issubclass(cls, Functional)):
            return Functional.from_config(config)
        return cls(**config)

    def _weight_layers(self):
        """The layers that own the model's weights, each once, in the model's order."""
        seen, out = set(), []
        for layer in self._all_layers():
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
        return out

    @property
    def inputs(self):
        return list(self._graph()[0]) if self.built else None

    @property
    def outputs(self):
        return list(self._graph()[2]) if self.built else None

    @property
    def input_shape(self):
        if not self.built:
            return None
        shapes = [t.shape for t in self._graph()[0]]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        if not self.built:
            return None
        shapes = [t.shape for t in self._graph()[2]]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_names(self):
        """The names that key outputs in fit's ``y`` dicts and History (Keras: the output layers' names)."""
        return [t._keras_history[0].name for t in self._graph()[2]]

    @property
    def input_names(self):
        return [t._keras_history[0].name for t in self._graph()[0]]

    def get_layer(self, name=None, index=None):
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Layer index {index} out of range for {len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: {[l.name for l in layers]}")

    def _pack(self):
        """Packs the weights into this model's buffer unless it already holds them as laid out."""
        layers = self._weight_layers()
        layout = tuple((id(l), l.trainable, tuple(id(w) for w in l.weights)) for l in layers)
        if layout == self._layout and self._owns_weights(layers):
            return
        self._params, self._n_trainable = program.pack(layers)
        self._layout = layout
        self._programs = {}

    def _owns_weights(self, layers):
        """False when another model sharing these layers has packed them into its own buffer since."""
        base = self._params
        if base is None:
            return False
        for layer in layers:
            for w in layer.weights:
                if w.value.base is not base and w.value is not base:
                    return False
        return True

    # -- added losses ----------------------------------------------------
    def add_loss(self, loss):
        """Adds a value of this model's graph to the loss ``fit`` minimises (and
        ``evaluate`` reports), as tf.keras's ``model.add_loss`` on symbolic
        tensors: ``model.add_loss(ops.mean(ops.square(hidden)))``; in a
        subclassed model's ``call``, as ``Layer.add_loss``. A mean or sum over
        every axis as it is; any other tensor summed over all its values."""
        from ..layers.node import is_symbolic
        from ..ops import graph
        from .functional import walk
        for value in (loss if isinstance(loss, (list, tuple)) else [loss]):
            if not is_symbolic(value):
                raise ValueError(f"Model {self.name!r}: add_loss takes tensors of the model's graph (computed with "
                                 f"keras.ops or layers from its inputs), got {type(value).__name__}; a constant "
                                 "would change no gradient")
            if self.built:
                try:
                    walk(self._graph()[0], [value])
                except ValueError:
                    raise ValueError(f"Model {self.name!r}: add_loss got a tensor that is not computed from the "
                                     "model's inputs") from None
            self.__dict__.setdefault("_added_losses", []).append(graph.loss_term(value))

    def _loss_terms(self):
        """The (per-sample tensor, mode) terms ``add_loss`` gave this model: those of
        the layer calls in its graph (kept with each call's output, so a layer
        called twice adds twice and an earlier build's calls add nothing), then
        the model's own and those a layer got outside a call, when computed
        from the model's inputs."""
        from .functional import walk
        inputs, nodes, _ = self._graph()
        terms = [term for node in nodes for t in node.outputs for term in getattr(t, "_added_losses", ())]
        holders = [self, *self._weight_layers()]
        for holder in holders:
            for t, mode in holder.__dict__.get("_added_losses", ()):
                try:
                    walk(inputs, [t])
                except ValueError:      # another graph's
                    continue
                terms.append((t, mode))
        return terms

    @property
    def losses(self):
        """The terms ``add_loss`` gave this model's graph (symbolic tensors of
        one value per sample: each sample's share of the batch's value), then
        the weight penalties of its trainable weights (values), as Keras's
        ``model.losses``."""
        terms = [t for t, _ in self._loss_terms()] if self.built else []
        return terms + [np.float32(w.regularizer(w.value)) for w in self.trainable_weights
                        if w.regularizer is not None]

    # -- weights ---------------------------------------------------------
    @property
    def weights(self):
        return [w for l in self._weight_layers() for w in l.weights]

    @property
    def trainable_weights(self):
        return [w for l in self._weight_layers() for w in l.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for l in self._weight_layers() for w in l.non_trainable_weights]

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_variables(self):
        return self.trainable_weights

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
        for var, arr in zip(variables, arrays):
            var.value[...] = arr

    def count_params(self):
        return int(sum(l.count_params() for l in self._weight_layers()))

    @property
    def trainable(self):
        """False when every layer is frozen; setting it sets every layer's ``trainable``."""
        layers = self._weight_layers()
        return any(l.trainable for l in layers) if layers else True

    @trainable.setter
    def trainable(self, value):
        for layer in self._weight_layers():
            layer.trainable = value

    # -- summary ---------------------------------------------------------
    def summary(self, line_length=None, print_fn=None, **kwargs):
        """Prints Keras's table of layers, output shapes and parameter counts:
        a Sequential's in the Keras 2 layout (65 characters), a functional or
        subclassed model's in Keras 3's box layout with, for a graph that is
        not a chain, its "Connected to" column. ``print_fn`` receives the
        whole table as one string."""
        from ..models.sequential import Sequential
        from ..utils.summary import keras3_summary_text, summary_text
        if isinstance(self, Sequential):
            (print_fn or print)(summary_text(self, line_length or 65))
            return
        text = keras3_summary_text(self, line_length)
        if print_fn is None:
            print(text, end="")
        else:
            print_fn(text)

    # -- compile / train -------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, weighted_metrics=None, loss_weights=None,
                **kwargs):
        """Configures the model for training: optimizer, loss and metrics.

        Example::

            model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])

        Args:
            optimizer: A name (``"sgd"``, ``"rmsprop"``, ``"adam"``,
                ``"adamw"``, ``"adagrad"``, ``"adadelta"``, ``"adamax"``,
                ``"nadam"``, ``"ftrl"``, ``"lion"``), an optimizer class or
                instance from ``keras.optimizers``, or a serialized optimizer
                dict. Defaults to ``"rmsprop"``. An instance keeps its state
                (slots, iterations) across ``fit`` calls.
            loss: Required. A name (``"mse"``/``"mean_squared_error"``,
                ``"mae"``, ``"binary_crossentropy"``,
                ``"categorical_crossentropy"`` (one-hot targets),
                ``"sparse_categorical_crossentropy"`` (integer targets),
                ``"huber"``, ...), a ``keras.losses`` object, or a function
                ``fn(y_true, y_pred)`` returning per-sample losses (see
                ``keras.losses.Loss``). For a model of several outputs, one loss
                for all of them, or a list in output order, or a dict keyed by
                output name. The loss of a batch is the mean of its per-sample
                values (weighted by sample weights as Keras's
                ``sum_over_batch_size``), plus the layers' weight penalties.
            metrics: Optional list of metrics reported by ``fit`` and
                ``evaluate`` (and in ``History`` under these names), computed
                without sample weights: names (``"accuracy"``/``"acc"``, chosen
                binary, categorical or sparse from the loss and shapes as
                Keras does; ``"mse"``, ``"mae"``, ``"RootMeanSquaredError"``,
                ``"auc"``, ``"precision"``, ``"recall"``, ``"mape"``,
                ``"top_k_categorical_accuracy"``, ...), ``keras.metrics``
                objects or classes, or functions ``fn(y_true, y_pred)``
                returning per-sample values. A single metric may be given bare.
                For several outputs: a list of lists in output order or a dict
                keyed by output name. Defaults to ``None`` (loss only).
            weighted_metrics: Like ``metrics``, but weighted by the
                ``sample_weight``/``class_weight`` of ``fit`` and
                ``evaluate``; a name already taken by ``metrics`` is logged as
                ``"weighted_<name>"``. Defaults to ``None``.
            loss_weights: Optional weights of the outputs' losses: the total
                loss is their weighted sum (a list in output order or a dict
                keyed by output name; one number for a one-output model).
                Defaults to ``None`` (all 1.0).
            **kwargs: ``run_eagerly``, ``steps_per_execution``,
                ``jit_compile`` and ``auto_scale_loss`` are accepted and
                ignored (fastnn always trains in its compiled loops); any other
                keyword raises ``TypeError``.

        Raises:
            ValueError: no loss, an unknown loss/metric/optimizer name, or
                per-output arguments that do not match the outputs. Every
                argument is resolved before anything is set, so a rejected
                call leaves the model as it was."""
        unknown = set(kwargs) - {"run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss"}
        if unknown:
            raise TypeError(f"compile() got unexpected arguments {sorted(unknown)}")
        new_optimizer = optimizers_module.get(optimizer)
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        spec = (loss, loss_weights, metrics, weighted_metrics)
        self._resolve_compile(spec)
        self._loss_spec = spec
        self.optimizer = new_optimizer
        self._loss_arg, self._metrics_arg = loss, metrics
        self.compiled = True
        training.offer_step_kernels(new_optimizer)

    def _resolve_compile(self, spec=None):
        """Resolves compile's loss/metric arguments per output once the outputs
        are known; before the model is built (a subclassed model) only checks
        the names, and resolves at the first fit/evaluate."""
        loss, loss_weights, metrics, weighted_metrics = spec or self._loss_spec
        if not self.built:
            for one in (loss.values() if isinstance(loss, dict) else loss if isinstance(loss, (list, tuple))
                        else [loss]):
                losses_module.get(one)
            self._losses = None
            self.loss = loss
            return
        names = self.output_names
        if len(names) == 1:
            if isinstance(loss, (list, tuple)) and len(loss) == 1:
                loss = loss[0]
            if isinstance(loss, dict) and len(loss) == 1:
                loss = next(iter(loss.values()))
            losses = [losses_module.get(loss)]
            weights = _per_output(loss_weights, names, "loss_weights", default=1.0)
            metric_ids = [_metric_list(metrics, "metrics")]
            weighted_ids = [_metric_list(weighted_metrics, "weighted_metrics")]
        else:
            if not isinstance(loss, (list, tuple, dict)) and isinstance(loss_weights, (list, tuple, dict)):
                # Keras 3 applies a single loss to every output only without per-output weights
                raise ValueError(f"`loss_weights` must match the number of losses, got 1 losses and "
                                 f"{len(loss_weights)} weights; give one loss per output, e.g. "
                                 f"loss={[loss] * len(names)!r}")
            losses = [losses_module.get(l) for l in _per_output(loss, names, "loss", broadcast=True)]
            weights = _per_output(loss_weights, names, "loss_weights", default=1.0)
            metric_ids = [_metric_list(m, "metrics") for m in _metrics_per_output(metrics, names, "metrics")]
            weighted_ids = [_metric_list(m, "weighted_metrics")
                            for m in _metrics_per_output(weighted_metrics, names, "weighted_metrics")]
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not np.isfinite(w):
                raise ValueError(f"loss_weights must be finite numbers, got {loss_weights!r}")
        self._losses, self._loss_weights = losses, [float(w) for w in weights]
        self.loss = losses[0] if len(losses) == 1 else losses
        self._output_metric_ids, self._output_weighted_metric_ids = metric_ids, weighted_ids
        # flat lists, as a one-output model's compile arguments
        self._metric_ids = [m for ids in metric_ids for m in ids]
        self._weighted_metric_ids = [m for ids in weighted_ids for m in ids]

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}()")
        if self.built and (self._losses is None or len(self._losses) != len(self._graph()[2]) or
                           self._resolved_for is not self._graph()[2]):
            self._resolve_compile()
            self._resolved_for = self._graph()[2]

    def _io(self):
        """The model's inputs and outputs as data is matched to them (``outputs.ModelIO``)."""
        inputs, _, outputs = self._graph()
        return ModelIO(self.input_names, [t.sample_shape for t in inputs], self.output_names,
                       [t.sample_shape for t in outputs], self._losses)

    def _resolve_metrics(self, sparse_targets, has_weights=False):
        """The compiled model's metrics for targets of this kind: a
        ``metrics.ModelMetrics`` for one output, an ``outputs.OutputMetrics`` for several."""
        sparse = sparse_targets if isinstance(sparse_targets, (list, tuple)) else [sparse_targets]
        per_output = []
        for o, (loss, shape) in enumerate(zip(self._losses, [t.sample_shape for t in self._graph()[2]])):
            out_dim = shape[-1]
            per_output.append(metrics_module.ModelMetrics(
                _resolve(self._output_metric_ids[o], out_dim, sparse[o], loss),
                _resolve(self._output_weighted_metric_ids[o], out_dim, sparse[o], loss), has_weights))
        if len(per_output) == 1 and self._loss_weights[0] == 1.0:
            return per_output[0]
        if self._traced:
            # Keras 3 gives a subclassed model's outputs no names: losses log as '<loss>_loss'
            # and metrics unprefixed ('RootMeanSquaredError', then 'RootMeanSquaredError_1')
            loss_ids = _per_output(self._loss_spec[0], self.output_names, "loss", broadcast=True)
            return OutputMetrics(None, per_output, self._loss_weights,
                                 [l if isinstance(l, str) else losses_module.get(l).name for l in loss_ids])
        return OutputMetrics(self.output_names, per_output, self._loss_weights)

    def _ensure_built(self, sample_shape, what):
        """Builds the model, if it is not built yet, for the per-sample shape
        ``sample_shape()`` returns (a call: a producer must read a batch to know it)."""
        if not self.built:
            sample_shape = sample_shape()
            if sample_shape is None:
                raise ValueError(f"{what} must have shape (samples, *features) to build the model")
            self.build((None, *sample_shape) if not isinstance(sample_shape, list) else sample_shape)
        self._pack()

    def _input_features(self, x, what):
        """``x`` as checked float32 (samples, features), building the model from its shape."""
        io = self._io_for_build(x)
        return io.features(x, what)

    def _io_for_build(self, x):
        if not self.built:
            arr = data.real_array(x, "x")
            self._ensure_built(lambda: arr.shape[1:] if arr.ndim >= 2 else None, "x")
        self._pack()
        inputs, _, outputs = self._graph()
        return ModelIO(self.input_names, [t.sample_shape for t in inputs], self.output_names,
                       [t.sample_shape for t in outputs], self._losses)

    def _source(self, x, y, with_targets, steps=None, what="x", y_what="y", steps_what="steps", **weights):
        """``x`` (and, ``with_targets``, targets ``y`` for the compiled losses) as
        a bound data source (``sources``), building the model from x's shape
        if needed. ``weights``: ``sample_weight``, ``class_weight``, ``sw_what``
        for ``sources.make``. A model of several inputs or outputs packs them
        into one feature array and one target array per kind (``outputs.ModelIO``)."""
        def several():
            return len(self._graph()[0]) > 1 or len(self._graph()[2]) > 1

        if self.built and several():
            self._pack()
            if with_targets:
                self._require_compiled("fit")
            return self._io().source(x, y, with_targets, steps, what, y_what, steps_what, **weights)
        x_single = x
        if not self.built and isinstance(x, (list, tuple)) and len(x) == 1 and not sources.is_producer(x):
            x_single = x[0]
        src = sources.make(_single(x_single), _single(y) if with_targets else y, targets=with_targets, steps=steps,
                           what=what, y_what=y_what, steps_what=steps_what, **weights)
        self._ensure_built(lambda: src.sample_shape, what)
        if with_targets:
            self._require_compiled("fit")     # built just now: the losses per output are known
        if several():
            return self._io().source(x, y, with_targets, steps, what, y_what, steps_what, **weights)
        inputs, _, outputs = self._graph()
        return src.bind(inputs[0].sample_shape, self._losses[0] if with_targets else None, outputs[0].sample_shape)

    def _program(self, losses):
        """The op table for these per-output losses (None: inference), cached."""
        inputs, nodes, outputs = self._graph()
        self._pack()
        terms = self._loss_terms() if losses is not None else []
        key = None if losses is None else tuple((l.code, l.from_logits, getattr(l, "graph_fn", None))
                                                for l in losses) + \
            tuple(self._loss_weights or ()) + tuple(id(t) for t, _ in terms)
        if key not in self._programs:
            self._programs[key] = program.compile_program(inputs, nodes, outputs, self._params, losses,
                                                          self._loss_weights if losses is not None else None, terms)
        return self._programs[key]

    def _program_for_training(self):
        return self._program(self._losses)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, **kwargs):
        """Trains the model for a fixed number of epochs.

        Example::

            history = model.fit(x_train, y_train, epochs=5, batch_size=32,
                                validation_data=(x_valid, y_valid))
            history.history   # {"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}

        Args:
            x: Required. Input data: a NumPy array (or anything ``np.asarray`` takes,
                any real dtype, converted to float32; a memory-mapped array is
                read a chunk at a time), of shape ``(samples, *input_shape)``.
                A model of several inputs takes a list/tuple of arrays in input
                order or a dict keyed by input name. ``x`` may instead be a
                Python generator or a ``keras.utils.PyDataset`` yielding
                ``(x, y)`` or ``(x, y, sample_weight)`` batches; then ``y`` and
                ``sample_weight`` must not be given.
            y: Targets, one row per sample of ``x``: integer labels for
                ``sparse_categorical_crossentropy``, arrays shaped like the
                outputs otherwise (one-hot rows for
                ``categorical_crossentropy``). Several outputs: a list in
                output order or a dict keyed by output name. Defaults to
                ``None``, which only a generator or PyDataset ``x`` allows.
            batch_size: Integer, samples per gradient step. Defaults to 32
                (capped at the number of samples).
            epochs: Integer, the epoch to train up to (from
                ``initial_epoch``). Defaults to 1.
            verbose: ``"auto"`` (default) or 1: a progress bar (one line per
                epoch when output is not a terminal); 2: one line per epoch;
                0: silent.
            callbacks: Optional list of ``keras.callbacks.Callback``
                instances (a single one is accepted too). A ``History`` is
                always added last.
            validation_split: Float in [0, 1), default 0.0: that fraction of
                the last samples (before shuffling) is held out and evaluated
                after each epoch. Arrays only.
            validation_data: Optional data evaluated after each epoch, instead of
                ``validation_split``: a tuple ``(x_val, y_val)`` or
                ``(x_val, y_val, sample_weight)``, or a PyDataset or generator
                of batches (a generator needs ``validation_steps``).
            shuffle: Boolean, default ``True``: the samples are reshuffled
                before each epoch (``keras.utils.set_random_seed`` makes the
                order reproducible).
            class_weight: Optional dict ``{class index: weight}`` scaling the
                loss of each sample by its class's weight (not together with
                ``sample_weight``).
            sample_weight: Optional array of shape ``(samples,)``: each
                sample's loss is weighted, ``sum_i w_i * loss_i / batch``
                (Keras's ``sum_over_batch_size``), and the
                ``weighted_metrics`` too.
            initial_epoch: Integer, default 0: the epoch to start counting
                from (to resume a run).
            steps_per_epoch: Optional integer: batches per epoch (with a
                generator or PyDataset; a generator without it runs to its
                end).
            validation_steps: Optional integer: batches per validation pass
                from a generator or PyDataset.
            **kwargs: ``validation_batch_size`` and ``validation_freq`` are
                accepted only as ``None``; any other keyword raises
                ``TypeError``.

        Returns:
            A ``keras.callbacks.History``: ``history.history`` maps ``"loss"``,
            each metric's name and their ``"val_"`` versions to lists of
            floats, one per epoch; ``history.epoch`` lists the epochs run.
            It is also ``model.history``.

        Raises:
            RuntimeError: the model is not compiled.
            ValueError: bad data, named: wrong shapes or sample counts, NaN or
                inf, labels out of range, empty arrays, non-numeric dtypes.
            fastnn.errors.NonFiniteLossError: the loss became NaN or infinite;
                the model keeps the weights from before that batch (on the GPU,
                those from the start of the epoch; the error says which).
            KeyboardInterrupt: Ctrl-C, raised after the current chunk of
                steps, with the model and optimizer consistent."""
        _no_kwargs("fit", kwargs, ("validation_batch_size", "validation_freq"))
        self._require_built_for(x, y)
        self._require_compiled("fit")
        return training.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                            validation_data, shuffle, initial_epoch, steps_per_epoch, class_weight, sample_weight,
                            validation_steps)

    def _require_built_for(self, x, y):
        """A subclassed model is traced on the first data it sees."""
        if not self.built and self._traced:
            self._trace_for(x)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, return_dict=False,
                 callbacks=None, steps=None, **kwargs):
        """Returns the loss and metrics of the model on the given data, in inference mode.

        Args:
            x: Required. Input data, as in ``fit`` (arrays, a list or dict of arrays for
                several inputs, or a generator / PyDataset of ``(x, y)`` or
                ``(x, y, sample_weight)`` batches).
            y: Targets, as in ``fit``. Defaults to ``None``, which only a
                generator or PyDataset ``x`` allows.
            batch_size: Integer, samples per batch. Defaults to 32.
            verbose: ``"auto"`` (default) or 1: a progress bar; 2: one line;
                0: silent.
            sample_weight: Optional array of shape ``(samples,)`` weighting
                each sample's loss (and the ``weighted_metrics``) as in
                ``fit``.
            return_dict: Boolean, default ``False``: return a dict
                ``{"loss": ..., <metric name>: ...}`` instead of a list.
            callbacks: Optional list of callbacks; they get the
                ``on_test_*`` hooks.
            steps: Optional integer: batches to evaluate from a generator or
                PyDataset.
            **kwargs: Any keyword raises ``TypeError``.

        Returns:
            With no metrics, the loss as a float; otherwise the list ``[loss,
            *metrics]`` in compile order. A model of several outputs gives,
            as Keras 3, ``[loss, <output>_loss for each output, then each
            output's metrics]`` (a dict in sorted key order). The loss
            includes the layers' weight penalties. With ``return_dict``, a
            dict of the same values.

        Raises:
            RuntimeError: the model is not compiled.
            ValueError: bad data (see ``fit``)."""
        _no_kwargs("evaluate", kwargs, ())
        self._require_built_for(x, y)
        self._require_compiled("evaluate")
        batch_size = data.positive_int(32 if batch_size is None else batch_size, "batch_size")
        verbose = training.resolve_verbose(verbose)
        src = self._source(x, y, True, steps=steps, sample_weight=sample_weight)
        logs, order = training.evaluate(self, src, batch_size, verbose, callbacks)
        if return_dict:
            return logs
        values = [logs[k] for k in order]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None, steps=None, **kwargs):
        """Returns the model's outputs for the input samples, in inference mode.

        Example::

            y_proba = model.predict(x_new, batch_size=128)

        Args:
            x: Input data: an array of shape ``(samples, *input_shape)`` (any
                real dtype, converted to float32), a list or dict of arrays for
                several inputs, or a generator / PyDataset yielding batches
                ``x`` or ``(x, y)`` (``y`` is ignored).
            batch_size: Integer, samples per batch. Defaults to 32.
            verbose: ``"auto"`` (default) or 1: a progress bar; 2: one line;
                0: silent.
            callbacks: Optional list of callbacks; they get the
                ``on_predict_*`` hooks.
            steps: Optional integer: batches to predict from a generator or
                PyDataset.
            **kwargs: Any keyword raises ``TypeError``.

        Returns:
            A float32 NumPy array of shape ``(samples, *output_shape)``; for a
            model of several outputs, a list of such arrays in output order
            (a dict when the model's outputs were given as a dict).

        Raises:
            ValueError: bad data (wrong shape, NaN or inf, empty)."""
        _no_kwargs("predict", kwargs, ())
        self._require_built_for(x, None)
        batch_size = data.positive_int(32 if batch_size is None else batch_size, "batch_size")
        verbose = training.resolve_verbose(verbose)
        src = self._source(x, None, False, steps=steps)
        return training.predict(self, src, batch_size, verbose, callbacks)

    def _split_outputs(self, out):
        """Predictions (rows, output columns) as one array per output, each (rows, *output shape)."""
        shapes = [t.sample_shape for t in self._graph()[2]]
        arrays, col = [], 0
        for shape in shapes:
            width = int(np.prod(shape))
            arrays.append(out[:, col:col + width].reshape((out.shape[0], *shape)))
            col += width
        if len(arrays) == 1:
            return arrays[0]
        if getattr(self, "_output_keys", None) is not None:
            return dict(zip(self._output_keys, arrays))
        return arrays

    def __call__(self, x, training=False, **kwargs):
        """On symbolic tensors: this model as a layer of a larger graph (not
        supported yet). On arrays: ``predict`` (inference mode), or with
        ``training=True`` the layers in training mode (Dropout masks drawn anew
        each call: Monte-Carlo Dropout; BatchNormalization on the batch's
        statistics), nothing updated."""
        from ..layers.node import is_symbolic
        if is_symbolic(x):
            raise NotImplementedError(f"Calling model {self.name!r} on symbolic tensors (nesting models) is not "
                                      "supported yet; build one model from the layers instead")
        if training:
            return _training.call_in_training_mode(self, x)
        return self.predict(x, verbose=0)

    # -- config ----------------------------------------------------------
    def get_compile_config(self):
        """Keras 3's record of the compile arguments ({} when not compiled)."""
        from ..saving.compile_config import get_compile_config
        return get_compile_config(self)

    def compile_from_config(self, config):
        """Compiles as a Keras 3 compile_config says (names looked up in fastnn's registries)."""
        from ..saving.compile_config import compile_from_config
        compile_from_config(self, config)

    # -- saving ----------------------------------------------------------
    def __reduce__(self):
        """pickle / cloudpickle / joblib / Dask go through the .keras format in memory."""
        from ..saving.pickling import reduce_model
        return reduce_model(self)

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

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _single(x):
    """A one-element list/tuple of arrays as its array (a single-input model's ``[x]``)."""
    if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
        return x[0]
    if isinstance(x, dict) and len(x) == 1:
        return next(iter(x.values()))
    return x


def _no_kwargs(method, kwargs, ignored_if_none):
    unknown = {k: v for k, v in kwargs.items() if not (k in ignored_if_none and v is None)}
    if unknown:
        raise TypeError(f"{method}() got unsupported arguments {sorted(unknown)}")


def _per_output(value, names, what, default=None, broadcast=False):
    """``value`` as one entry per output: a list/tuple in output order or a
    dict keyed by output name; a single value for every output when
    ``broadcast`` (losses), ``default`` when None."""
    n = len(names)
    if value is None:
        return [default] * n
    if isinstance(value, dict):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what} has keys {sorted(unknown)} that are not output names; the outputs are "
                             f"{names}")
        if default is None and set(value) != set(names):
            raise ValueError(f"{what} must have an entry for every output {names}, got keys {sorted(value)}")
        return [value.get(k, default) for k in names]
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what} must have one entry per output ({n}: {names}), got {len(value)}")
        return list(value)
    if broadcast:
        return [value] * n
    raise ValueError(f"{what} for a model with {n} outputs must be a list or a dict, got {value!r}")


def _metrics_per_output(metrics, names, what):
    """Keras 3's rules: a dict by output name, a list of lists (one per
    output), or a flat list with one entry per output."""
    if metrics is None:
        return [None] * len(names)
    if isinstance(metrics, str) or callable(metrics) or isinstance(metrics, metrics_module.Metric):
        metrics = [metrics]
    if isinstance(metrics, dict):
        return _per_output(metrics, names, what, default=[])
    if isinstance(metrics, (list, tuple)):
        if all(isinstance(m, (list, tuple)) or m is None for m in metrics):
            return _per_output(list(metrics), names, what)
        if len(metrics) == len(names):
            return list(metrics)
        raise ValueError(f"For a model with multiple outputs, when providing the `{what}` argument as a list, it "
                         f"should have as many entries as the model has outputs. Received: {what}={metrics} of "
                         f"length {len(metrics)} whereas the model has {len(names)} outputs; give a list per "
                         "output or a dict keyed by output name")
    raise ValueError(f"{what} must be a list or a dict, got {metrics!r}")


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


def _resolve(ids, out_dim, sparse_targets, loss):
    metrics = [metrics_module.get(m, output_dim=out_dim, target_ndim=1 if sparse_targets else 2) for m in ids]
    # The compiled loop holds either integer labels or dense targets, never both:
    # a built-in metric reading the other kind would silently compare against zeros.
    # (Own metrics run in NumPy on the targets the loss takes.)
    for m in metrics:
        if sparse_targets and getattr(m, "needs_dense_targets", False):
            # the NumPy metrics that compare each output with its target (AUC, Precision, top-k...)
            raise ValueError(f"Metric {m.name!r} compares each output with a target of the same shape, but "
                             f"loss {loss.name!r} takes integer labels; one-hot encode the targets and use "
                             "loss='categorical_crossentropy', or use 'sparse_top_k_categorical_accuracy'")
        if m.code is None:
            continue
        if sparse_targets and m.code != P.M_SPARSE_ACC:
            raise ValueError(f"Metric {m.name!r} needs targets shaped like the outputs, but loss "
                             f"{loss.name!r} takes integer labels; use 'accuracy' or "
                             "'sparse_categorical_accuracy'")
        if not sparse_targets and m.code == P.M_SPARSE_ACC:
            raise ValueError(f"Metric {m.name!r} needs integer labels, which only "
                             "loss='sparse_categorical_crossentropy' takes; use 'accuracy' or "
                             "'categorical_accuracy'")
    return metrics
