"""Layer and Variable: shapes, configuration and weights. No maths here.

A layer's weights are ``Variable``s. Once a model is built, every Variable's
value is a view into the model's one flat float32 parameter buffer, so
writing a Variable writes the buffer the compiled loops train.
"""
import contextlib
import contextvars
import copy
import inspect
import re

import numpy as np

from .. import constraints, initializers, regularizers
from .operators import Operators


class Variable(Operators):
    """A named float32 weight array. ``value`` may be a view into a model buffer.
    Python operators (``w + 1``, ``x @ w``) are ``keras.ops`` calls.

    ``regularizer``: a ``fastnn.regularizers`` penalty on this weight, or None;
    ``constraint``: a ``fastnn.constraints`` constraint fit applies after each update, or None."""

    def __init__(self, value, name, trainable=True, regularizer=None, constraint=None):
        self.value = np.array(value, dtype=np.float32, order="C")   # keeps shape () (ascontiguousarray would not)
        self.name = name
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return "float32"

    @property
    def size(self):
        return self.value.size

    def numpy(self):
        return self.value.copy()

    def assign(self, new):
        new = np.asarray(new)
        if new.shape != self.value.shape:
            raise ValueError(f"Cannot assign a value of shape {new.shape} to variable {self.name!r} "
                             f"of shape {self.value.shape}")
        _check_finite(new, self.name)
        self.value[...] = new

    def assign_add(self, delta):
        self.assign(self.value + np.asarray(delta, dtype=np.float32))

    def assign_sub(self, delta):
        self.assign(self.value - np.asarray(delta, dtype=np.float32))

    def __array__(self, dtype=None, copy=None):
        return self.value.astype(dtype) if dtype is not None else self.value.copy()

    def __float__(self):
        return float(self.value)

    # Comparisons with numbers and arrays are elementwise, as on Keras variables
    # (anything else gets its own __eq__); identity stays the hash.
    def __eq__(self, other):
        from .. import ops
        return ops.equal(self, other) if _comparable(other) else NotImplemented

    def __ne__(self, other):
        from .. import ops
        return ops.not_equal(self, other) if _comparable(other) else NotImplemented

    __hash__ = object.__hash__

    def __format__(self, spec):
        return format(float(self.value), spec) if self.value.size == 1 else format(self.value, spec)

    def __repr__(self):
        return f"<Variable {self.name} shape={self.shape} trainable={self.trainable}>"


def _comparable(other):
    return isinstance(other, (int, float, np.ndarray, np.generic, Variable))


def _check_finite(arr, what):
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{what}: weights must be real numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: weights contain NaN or inf")


# How add_weight makes values: None (the initializer), "load" (zeros: a file's values follow, so
# initializing millions of weights at random would be wasted) or "probe" (one float viewed at
# the shape, no memory: only the shapes are wanted, to check a file before allocating).
_WEIGHT_MODE = contextvars.ContextVar("fastnn_weight_mode", default=None)


@contextlib.contextmanager
def weight_mode(mode):
    """Layers built inside make their weights as ``mode`` says: "load" or "probe" (above)."""
    token = _WEIGHT_MODE.set(mode)
    try:
        yield
    finally:
        _WEIGHT_MODE.reset(token)


# Keras 3 records every layer's dtype policy like this; fastnn computes in float32 only.
FLOAT32_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                  "registered_name": None}


def check_float32(dtype, what):
    """Accepts a Keras dtype (None, "float32" or a float32 DTypePolicy dict); refuses others."""
    if dtype is None or dtype == "float32":
        return
    if isinstance(dtype, dict) and dtype.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") \
            and isinstance(dtype.get("config"), dict) and dtype["config"].get("name") == "float32":
        return
    shown = dtype["config"].get("name") if isinstance(dtype, dict) and isinstance(dtype.get("config"), dict) \
        else dtype
    raise ValueError(f"{what}: dtype {shown!r} is not supported; fastnn computes in float32 only")


_NAME_COUNTS = {}


def unique_name(base):
    """``base``, then ``base_1``, ``base_2``...: Keras 3 numbers auto-named
    layers across a session (``keras.backend.clear_session`` starts again)."""
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def reset_names():
    _NAME_COUNTS.clear()


def normalize_weight_shape(shape):
    """A weight's shape as a tuple of non-negative ints (an int is a 1-D shape)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
        raise ValueError(f"A weight's shape must be non-negative integers, got {shape!r}")
    return tuple(int(d) for d in shape)


def user_defined(cls, attr):
    """True when ``cls``'s ``attr`` comes from a class outside fastnn (a user's subclass)."""
    for klass in cls.__mro__:
        if attr in klass.__dict__:
            return not klass.__module__.startswith("fastnn.")
    return False


def snake_case(name):
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()     # Keras's rule: Conv2D -> conv2d


def normalize_shape(shape, what="input_shape"):
    """A per-sample shape as a tuple of positive ints; accepts lists and ints."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"{what} must be a tuple of positive integers, got {shape!r}") from None
    if any(d is None for d in shape):
        raise ValueError(f"{what} {shape!r}: fastnn needs every dimension's size (variable-length "
                         "sequences: pad them to one length with keras.utils.pad_sequences and give it)")
    out = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0:
            raise ValueError(f"{what} must be a tuple of positive integers, got {shape!r}")
        out.append(int(d))
    return tuple(out)


class Layer:
    """Base class. Subclasses define ``build``, ``compute_output_shape``,
    ``get_config`` and ``op`` (what the compiled program runs).

    ``get_config`` returns Keras 3's config for the class, so files move
    between fastnn and Keras; ``from_config`` also takes the keys Keras adds.
    """
    # Keras config keys that fastnn accepts only at this value ({key: value}), unless
    # the class's __init__ takes the key itself.
    keras_fixed = {"activity_regularizer": None}
    # Whether Keras records this layer's build input shape (layers whose build Keras overrides).
    keras_build_config = True
    # Keras's supports_masking with the default compute_mask: the output keeps the input's mask.
    propagates_mask = False
    # Of a layer's several outputs, how many (the first ones) carry the mask ``output_mask`` gives.
    masked_outputs = 1
    # Keras's call of this layer has a ``mask`` argument (filled from the input, recorded in the
    # graph: ``_with_mask``), and whether the op reads it as its last input.
    takes_mask = False
    reads_mask = False

    def __init__(self, name=None, trainable=True, input_shape=None, dtype=None, input_dim=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Layer name must be a non-empty string, got {name!r}")
        self._auto_name = name is None
        self.name = name if name is not None else unique_name(snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = normalize_shape(input_shape) if input_shape is not None else None
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []
        self._inbound_nodes = []

    # -- weights ---------------------------------------------------------
    def add_weight(self, *args, shape=None, initializer=None, dtype=None, trainable=True, regularizer=None,
                   constraint=None, name=None, autocast=True, aggregation="none"):
        """A new weight Variable of this layer, Keras 3's way:
        ``add_weight(shape, initializer="glorot_uniform", dtype=None, trainable=True,
        regularizer=None, constraint=None, name=None)`` (float32 only; an unnamed weight
        is "variable", then "variable_1", ... across the session); ``autocast`` and
        ``aggregation`` are accepted for Keras's signature and change nothing (float32 only,
        one device). fastnn's own layers call it as ``add_weight(name, shape, initializer)``."""
        keys = ("name", "shape", "initializer") if args and isinstance(args[0], str) else \
            ("shape", "initializer", "dtype", "trainable")
        if len(args) > len(keys):
            raise TypeError(f"add_weight takes at most {len(keys)} positional arguments, got {len(args)}")
        given = dict(zip(keys, args))
        shape, initializer = given.get("shape", shape), given.get("initializer", initializer)
        dtype, trainable, name = given.get("dtype", dtype), given.get("trainable", trainable), given.get("name", name)
        if shape is None:
            shape = ()
        check_float32(dtype, f"Layer {self.name!r} weight {name!r}")
        if name is None:        # numbered across the session, as Keras 3 does
            name = unique_name("variable")
        init = initializers.get("glorot_uniform" if initializer is None else initializer)
        shape = normalize_weight_shape(shape)
        mode = _WEIGHT_MODE.get()
        var = Variable(init(shape) if mode is None else 0.0, f"{self.name}/{name}", trainable=trainable,
                       regularizer=regularizers.get(regularizer), constraint=constraints.get(constraint))
        if mode == "load":
            var.value = np.zeros(shape, dtype=np.float32)
        elif mode == "probe":    # every element is the one float: writes (a given mean) land harmlessly
            var.value = np.lib.stride_tricks.as_strided(var.value.reshape(1), shape, (0,) * len(shape))
        self._weights.append(var)
        return var

    @property
    def trainable(self):
        """False freezes the layer: ``fit`` leaves its weights alone (they move to
        the non-trainable part of the buffer, and ``summary()`` counts them as
        non-trainable) and a BatchNormalization layer runs on its moving
        statistics. As in Keras, a change made after ``compile`` takes effect at
        the next ``fit``/``evaluate`` (here without recompiling: the model
        re-packs its buffer then, which resets the optimizer's slots and
        iteration count)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)

    def _sublayers(self):
        """Layers a user's layer holds as attributes (directly or in lists, tuples,
        dicts), in assignment order: their weights are this layer's too, as in Keras."""
        if not user_defined(type(self), "__init__") and not user_defined(type(self), "build"):
            return []
        found, seen = [], {id(self)}
        for value in vars(self).values():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) \
                else [value]
            for item in items:
                if isinstance(item, Layer) and id(item) not in seen:
                    seen.add(id(item))
                    found.append(item)
        return found

    @property
    def weights(self):
        return list(self._weights) + [w for layer in self._sublayers() for w in layer.weights]

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_weights(self):
        if not self._trainable:
            return []
        return [w for w in self._weights if w.trainable] + \
            [w for layer in self._sublayers() for w in layer.trainable_weights]

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self):
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    non_trainable_variables = non_trainable_weights

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def get_weights(self):
        """Copies of the weights, in Keras's order (kernel, bias, ...)."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        variables = self.weights
        if len(weights) != len(variables):
            raise ValueError(f"Layer {self.name!r} expects {len(variables)} weight arrays, got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        for var, arr in zip(variables, arrays):
            if arr.shape != var.shape:
                raise ValueError(f"Layer {self.name!r}: weight {var.name!r} has shape {var.shape}, "
                                 f"got an array of shape {arr.shape}")
            _check_finite(arr, f"Layer {self.name!r} weight {var.name!r}")
        for var, arr in zip(variables, arrays):
            var.value[...] = arr

    # -- added losses --------------------------------------------------------
    def add_loss(self, loss):
        """Adds ``loss`` to the loss ``fit`` minimises, as Keras's ``add_loss``
        (call it in ``call``). On symbolic tensors (a traced call) the value
        joins the compiled training loss with its gradient: a mean or sum over
        every axis (``ops.mean(x)``, ``ops.sum(x)``, scaled by numbers or added
        together) as it is, any other tensor summed over all its values, as Keras
        does. On arrays (an eager call) the value is kept in ``losses`` until
        the layer's next call."""
        from .node import _ADDED, is_symbolic
        from .. import ops
        for value in (loss if isinstance(loss, (list, tuple)) else [loss]):
            if is_symbolic(value):      # kept with the call being traced (a model holds the calls it makes)
                (_ADDED[-1] if _ADDED else self.__dict__.setdefault("_added_losses", [])).append(
                    ops.graph.loss_term(value))
            else:
                self.__dict__.setdefault("_eager_losses", []).append(np.float32(np.sum(np.asarray(value))))

    @property
    def losses(self):
        """The values ``add_loss`` got in this layer's (and its sub-layers') last
        call on arrays, then the weight penalties of its trainable weights, as
        Keras's ``layer.losses``."""
        added = list(self.__dict__.get("_eager_losses", []))
        added += [v for layer in self._sublayers() for v in layer.__dict__.get("_eager_losses", [])]
        return added + [np.float32(w.regularizer(w.value)) for w in self.trainable_weights
                        if w.regularizer is not None]

    # -- shapes ----------------------------------------------------------
    def build_for(self, input_shape):
        """Builds once for a per-sample ``input_shape`` (a list of shapes for a
        layer of several inputs); returns the output shape. A layer without
        weights may later be called on other shapes; one with weights only on
        the shape it was built for."""
        input_shape = _shape_of(input_shape)
        if self.built:
            if input_shape != self.input_shape:
                if self._weights:
                    raise ValueError(f"Layer {self.name!r} was built for input shape {self.input_shape}, "
                                     f"cannot be used with {input_shape}")
                return tuple(self.compute_output_shape(input_shape))
            return self.output_shape
        output_shape = tuple(self.compute_output_shape(input_shape))
        self.build(input_shape)
        self.input_shape, self.output_shape, self.built = input_shape, output_shape, True
        return output_shape

    def build(self, input_shape):
        pass

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # -- calls -------------------------------------------------------------
    def __call__(self, inputs, *args, **kwargs):
        """On symbolic tensors (``keras.Input`` or a layer's output): records the
        call in the graph and returns the output tensor. On arrays: computes
        the layer's output (inference mode) and returns a NumPy array."""
        from .node import is_symbolic
        if args:
            raise TypeError(f"Layer {self.name!r} takes one input structure (a tensor or a list of tensors), "
                            f"got {1 + len(args)} positional arguments")
        unknown = set(kwargs) - {"training", "mask"}
        if unknown:
            raise TypeError(f"Layer {self.name!r} got unexpected call arguments {sorted(unknown)}")
        from .node import _TRAINING
        kwargs = self._resolve_training(kwargs)
        _TRAINING.append(kwargs.get("training"))
        try:
            if is_symbolic(inputs):
                return self._symbolic_call(inputs, kwargs)
            return self._eager_call(inputs, kwargs)
        finally:
            _TRAINING.pop()

    def _resolve_training(self, kwargs):
        """``kwargs`` with ``training`` as Keras resolves it: the call's own
        True/False, else the enclosing layer call's, else absent (each run's mode)."""
        from .node import current_training
        training = kwargs.get("training")
        if training is None:
            training = current_training()
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        if training is None:
            return kwargs
        if not isinstance(training, (bool, np.bool_, int, np.integer)) or training not in (0, 1):
            raise TypeError(f"Layer {self.name!r}: training must be True, False or None, got {training!r} (a mode "
                            "fixed when the layer is called; it cannot depend on the data)")
        return {**kwargs, "training": bool(training)}

    def call(self, inputs, training=None):
        """The layer's computation. A user's layer overrides it with ``keras.ops``
        and other layers' calls: traced once per call site into the model's
        graph on symbolic tensors (so it trains compiled), run directly on
        arrays. Here (a built-in layer, or ``super().call`` from an override):
        the layer's own compiled op."""
        from .node import is_symbolic
        kwargs = self._resolve_training({} if training is None else {"training": training})
        if is_symbolic(inputs):
            return self._node(inputs, kwargs)
        from ..models.functional import eager_call
        return eager_call(self, inputs, builtin=True, training=kwargs.get("training"))

    def _has_own_call(self):
        return user_defined(type(self), "call")

    def _symbolic_call(self, inputs, kwargs):
        if self._has_own_call():
            return self._trace_call(inputs, kwargs)
        return self._node(inputs, kwargs)

    def _node(self, inputs, kwargs):
        """Records this layer's own op on symbolic ``inputs``; returns the output tensor (a list of them
        when compute_output_shape gives a list of shapes: return_state, merge_mode=None)."""
        from .node import KerasTensor, Node, flatten
        tensors = flatten(inputs)
        if not isinstance(inputs, KerasTensor) and (not isinstance(inputs, (list, tuple)) or
                                                    len(tensors) != len(inputs)):
            raise TypeError(f"Layer {self.name!r} must be called on a tensor or a flat list of tensors, "
                            f"got {type(inputs).__name__}")
        if any(t._batch_reduction for t in tensors):
            raise ValueError(f"Layer {self.name!r} got a reduction over the batch axis too (ops.mean or ops.sum with "
                             "axis=None); in a model such a value can only go to add_loss")
        kwargs = self._with_mask(inputs, kwargs)
        shape = inputs.sample_shape if isinstance(inputs, KerasTensor) else [t.sample_shape for t in tensors]
        out_shape = self.build_for(shape)
        several = several_outputs(out_shape)
        outputs = [KerasTensor((None, *s), name=self.name) for s in (out_shape if several else [out_shape])]
        node = Node(self, inputs, outputs, kwargs)
        # Keras's previous mask: the call's mask=, else its first input's
        previous = node.mask if node.mask is not None else tensors[0]._mask if tensors else None
        mask = self.output_mask(tensors, previous)
        for k, output in enumerate(outputs):
            output._keras_history = (self, len(self._inbound_nodes), k)
            output._mask = mask if k < self.masked_outputs else None
        self._inbound_nodes.append(node)
        if several:
            return outputs
        output = outputs[0]
        then = getattr(self, "activation_call", None)
        if then is not None:    # activation= a layer object or an ops function: its nodes belong to this layer
            from .node import _TRACING
            _TRACING.append(self)
            try:
                output = then(output)
            finally:
                _TRACING.pop()
        return output

    def _call_kwargs(self, kwargs):
        """The call arguments this layer's ``call`` takes (``training``, ``mask``)."""
        params = inspect.signature(self.call).parameters
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        return {k: v for k, v in kwargs.items() if k in params or takes_all}

    def _build_own(self, inputs):
        """Builds a user's layer before its first call: its own ``build`` gets the
        full shape (None first), as in Keras; an inherited built-in build, the per-sample one."""
        from .node import KerasTensor, flatten
        tensors = flatten(inputs)
        sample = inputs.sample_shape if isinstance(inputs, KerasTensor) else [t.sample_shape for t in tensors]
        if self.built:
            return
        if user_defined(type(self), "build") or type(self).build is Layer.build:
            full = tuple(inputs.shape) if isinstance(inputs, KerasTensor) else [tuple(t.shape) for t in tensors]
            self.build(full)
            self.input_shape, self.built = sample, True
        else:
            self.build_for(sample)

    def _trace_call(self, inputs, kwargs):
        """Runs this user layer's ``call`` on symbolic tensors: the ops and layer
        calls it makes join the graph, owned by the outermost traced layer."""
        from .node import _ADDED, _TRACING, KerasTensor, flatten
        self._build_own(inputs)
        _TRACING.append(self)
        _ADDED.append([])
        try:
            outputs = self.call(inputs, **self._call_kwargs(kwargs))
        finally:
            _TRACING.pop()
            added = _ADDED.pop()
        flat = flatten(outputs)
        if not flat or (not isinstance(outputs, KerasTensor) and len(flat) != len(outputs)):
            raise TypeError(f"{type(self).__name__}.call returned {outputs!r}; on symbolic inputs it must return "
                            "tensors made with keras.ops or layers")
        given = {id(t) for t in flatten(inputs)}
        if any(id(t) in given for t in flat):     # call returned an input: a node of its own keeps the graph a graph
            from ..ops.graph import identity
            outputs = identity(outputs) if isinstance(outputs, KerasTensor) else \
                [identity(t) if id(t) in given else t for t in outputs]
            flat = flatten(outputs)
        self.output_shape = flat[0].sample_shape if len(flat) == 1 else [t.sample_shape for t in flat]
        if added:       # the call's add_loss terms travel with its output: a model whose graph has it has them
            flat[0]._added_losses = getattr(flat[0], "_added_losses", []) + added
        return outputs

    def _eager_call(self, inputs, kwargs):
        if self._has_own_call():
            for layer in [self, *self._sublayers()]:     # add_loss values are those of the latest call
                layer.__dict__.pop("_eager_losses", None)
            self._build_own(_symbolic_like(inputs))
            return self.call(_as_arrays(inputs), **self._call_kwargs(kwargs))
        from ..models.functional import eager_call
        return eager_call(self, inputs, training=kwargs.get("training"), mask=kwargs.get("mask"))

    def _node_attribute(self, attr, what):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name!r} has never been called and thus has no defined {what}")
        value = getattr(self._inbound_nodes[0], attr)
        return value[0] if isinstance(value, list) and len(value) == 1 else value

    @property
    def input(self):
        """The tensor this layer's first call read (a list for several)."""
        return self._node_attribute("inputs", "input")

    @property
    def output(self):
        """The tensor this layer's first call made."""
        return self._node_attribute("outputs", "output")

    def output_mask(self, inputs, mask):
        """The mask of this call's output (see ``KerasTensor._mask``), or None, as Keras's
        ``compute_mask``: ``inputs`` the call's input tensors, ``mask`` the call's mask= or else its
        first input's. Layers without masking support drop the mask, as Keras does."""
        return mask if self.propagates_mask else None

    def _with_mask(self, inputs, kwargs):
        """The call's arguments with ``mask`` as Keras 3 passes it: the call's own mask= (a symbolic
        tensor of shape (None, timesteps)), else, for a layer whose call takes a mask and a call of one
        tensor (no initial_state=), the input's mask; for other layers none."""
        from .node import KerasTensor
        mask = kwargs.get("mask")
        kwargs = {k: v for k, v in kwargs.items() if k != "mask"}
        given = mask is not None
        if given and not self.takes_mask:
            raise TypeError(f"Layer {self.name!r} ({type(self).__name__}) takes no mask= argument; the recurrent "
                            "layers, Bidirectional, GlobalAveragePooling1D and TimeDistributed do")
        if given and not isinstance(mask, KerasTensor):
            raise TypeError(f"Layer {self.name!r}: in a model's graph mask= must be a symbolic tensor of one value "
                            f"per timestep (e.g. keras.ops.not_equal(ids, 0)), got {type(mask).__name__}")
        if not given and self.takes_mask and isinstance(inputs, KerasTensor) and kwargs.get("initial_state") is None:
            mask = inputs._mask
        if mask is None:
            return kwargs
        steps = tuple(inputs.sample_shape[:1]) if isinstance(inputs, KerasTensor) else ()
        if not steps or tuple(mask.sample_shape) != steps:
            what = "mask=" if given else "input's mask"
            raise ValueError(f"Layer {self.name!r}: its {what} has shape {mask.shape}; a mask needs one value per "
                             f"timestep of the input {getattr(inputs, 'shape', None)}")
        return {**kwargs, "mask": mask}

    # -- program -----------------------------------------------------------
    def op(self, input_shape):
        """The compiled operation for a call on per-sample ``input_shape``:
        ``None`` when the output is the input's values (a reshape), else an ``Op``."""
        return None

    def get_build_config(self):
        """Keras's ``build_config`` of this built layer: ``{"input_shape": [None, ...]}``, the shape it
        was built for (a merge layer's: the list of its inputs' shapes)."""
        shape = self.input_shape
        return {"input_shape": [[None, *s] for s in shape] if isinstance(shape, list) else [None, *shape]}

    # -- config ----------------------------------------------------------
    def get_config(self):
        """Keras 3's layer config: name, trainable, dtype policy, then the class's own keys.
        (The input shape travels in the model's InputLayer, as in Keras 3.)"""
        return {"name": self.name, "trainable": self.trainable, "dtype": copy.deepcopy(FLOAT32_POLICY)}

    @classmethod
    def from_config(cls, config):
        """The layer for ``config`` (fastnn's or Keras's); keys Keras adds are
        accepted at their default value and refused otherwise."""
        config = dict(config)
        what = f"{cls.__name__} {config.get('name')!r}"
        check_float32(config.pop("dtype", None), what)
        takes = inspect.signature(cls.__init__).parameters
        for key, value in {**Layer.keras_fixed, **cls.keras_fixed}.items():
            if key in config and key not in takes and config.pop(key) != value:
                raise ValueError(f"{what}: fastnn supports only {key}={value!r}")
        bis = config.pop("batch_input_shape", None) or config.pop("batch_shape", None)  # Keras 2 configs
        if bis is not None:
            config["input_shape"] = tuple(bis[1:])
        try:
            return cls(**config)
        except TypeError as e:
            raise ValueError(f"{what}: {e}") from None

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _as_arrays(inputs):
    if isinstance(inputs, (list, tuple)):
        return [np.asarray(a, dtype=np.float32) for a in inputs]
    return np.asarray(inputs, dtype=np.float32)


def _symbolic_like(inputs):
    """Symbolic stand-ins of arrays' shapes (batch axis None), for building a layer before an eager call."""
    from .node import KerasTensor
    if isinstance(inputs, (list, tuple)):
        return [_symbolic_like(a) for a in inputs]
    arr = np.asarray(inputs)
    if arr.ndim < 1:
        raise ValueError(f"Layer input of shape {arr.shape}: arrays need a batch dimension first")
    return KerasTensor((None, *arr.shape[1:]))


class Op:
    """What a layer asks the compiled program to do.

    kind: a ``kernels.kinds`` code (``program.DENSE``, ...); act: activation
    code; w, b: the Variables read as (W_OFF, B_OFF); consts: float
    constants (at AUX); ints: integer constants (at IAUX); state:
    non-trainable Variables read and written at S_OFF, which must lie one
    after the other in the buffer; scratch: per-sample floats of workspace
    the op keeps for its backward pass (at Z_POS); output_in_scratch: the
    output is the scratch itself (a linear Dense); rows: rows per sample of
    a Dense op on the last axis; reads_at: for an op of several outputs, the index in ``ints`` where the
    program builder writes which outputs get a gradient (bit k: output k), or None."""

    def __init__(self, kind, act=0, w=None, b=None, consts=(), state=(), ints=(), scratch=0,
                 output_in_scratch=False, rows=1, reads_at=None):
        self.reads_at = reads_at
        self.kind, self.act, self.w, self.b, self.consts = kind, act, w, b, tuple(consts)
        self.state = tuple(state)
        self.ints = tuple(int(i) for i in ints)
        self.scratch, self.output_in_scratch, self.rows = int(scratch), bool(output_in_scratch), int(rows)


def several_outputs(shape):
    """True when ``shape``, what a layer's compute_output_shape gave, is a list of per-output shapes."""
    return isinstance(shape, (list, tuple)) and len(shape) > 0 and all(isinstance(s, (list, tuple)) for s in shape)


def _shape_of(shape):
    """A per-sample shape as a tuple, or a list of them for several inputs."""
    if isinstance(shape, list) and shape and all(isinstance(s, (tuple, list)) for s in shape):
        return [tuple(s) for s in shape]
    return tuple(shape)
