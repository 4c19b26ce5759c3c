"""Functional models: ``keras.Model(inputs, outputs)``, and subclassed models traced into one.

The model is the walk from its output tensors back to its inputs through
the layer calls that made them (``layers.node``); the calls, in an order
where each comes after the calls it reads, are what ``models.program``
compiles. A ``Model`` subclass with its own ``call`` is traced once, on
symbolic inputs of the data's shapes, into the same kind of graph.
"""
import numpy as np

from ..layers.core import InputLayer
from ..layers.node import KerasTensor, Node, flatten, model_layer
from .model import Model


def walk(inputs, outputs):
    """The layer calls between ``inputs`` and ``outputs`` (KerasTensor lists),
    each after the calls whose outputs it reads, InputLayer calls left out.
    Raises ValueError when an output depends on a tensor that is not an input."""
    input_ids = {id(t) for t in inputs}
    order, state = [], {}

    def visit(tensor):
        if id(tensor) in input_ids:
            return
        history = tensor._keras_history
        if history is None:
            raise ValueError(f"{tensor} was not made by a layer call; model outputs must come from keras.Input "
                             "through layers")
        node = history[0]._inbound_nodes[history[1]]
        if isinstance(node.layer, InputLayer):
            raise ValueError(f"Graph disconnected: the model's outputs depend on the input {node.layer.name!r} "
                             "(of shape {}), which is not among the model's inputs".format(tensor.shape))
        key = id(node)
        if state.get(key) == "done":
            return
        if state.get(key) == "active":
            raise ValueError("The layer graph has a cycle")
        state[key] = "active"
        for t in node.input_tensors:
            visit(t)
        state[key] = "done"
        order.append(node)

    for t in outputs:
        visit(t)
    return order


def _walk_back(outputs):
    """Keras 3's depth-first walk from ``outputs`` (``ops.function._build_map``):
    the layer calls after the calls they read, and each layer's first-visit
    index (counted before its inputs are visited)."""
    postorder, finished, first_seen = [], set(), {}

    def visit(tensor):
        layer, node_index, _ = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        if id(node) in finished:
            return
        first_seen.setdefault(id(layer), len(first_seen))
        for t in node.input_tensors:
            visit(t)
        finished.add(id(node))
        postorder.append(node)

    for t in outputs:
        visit(t)
    return postorder, first_seen


def node_depths(inputs, outputs):
    """{id(node): (depth, node)} for the layer calls that make ``outputs``, as
    Keras 3's ``map_graph`` numbers them: an output's call has depth 0, a
    call one more than the deepest call that reads it, and every call of a
    layer the deepest depth of its calls; an input no output reads has depth 0."""
    node_depth, layer_depth, out = {}, {}, {}
    for node in reversed(_walk_back(outputs)[0]):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        out[id(node)] = (depth, node)
        for t in node.input_tensors:
            node_depth[id(t.node)] = max(depth + 1, node_depth.get(id(t.node), 0))
    for t in inputs:
        if id(t.node) not in out:
            out[id(t.node)] = (0, t.node)
    return out


def keras_layer_order(inputs, outputs, with_ops=False):
    """The layers of the graph that makes ``outputs``, in Keras 3's
    ``Functional.layers`` order (``ops.function.map_graph``): deepest first
    (a layer's depth is that of its deepest call, ``node_depths``), ties in
    the order the walk from the outputs first meets them (``_walk_back``).
    InputLayers are included; the wide & deep model lists its deep input
    first. An input no output reads comes first among the layers of depth 0.
    ``with_ops``: Keras's ``Functional.operations``: with the keras.ops calls
    made outside any layer's call (an Embedding's mask), constants left out."""
    first_seen = _walk_back(outputs)[1]
    for t in inputs:
        first_seen.setdefault(id(t._keras_history[0]), -1)
    depth, layers, seen = {}, {}, {}
    for d, node in node_depths(inputs, outputs).values():
        layer = model_layer(node)       # the own layer a traced op belongs to; None for a hidden op
        if layer is None and with_ops and node.owner is None and node.input_tensors:
            layer = node.layer
        if layer is None:
            continue
        depth[id(layer)] = max(d, depth.get(id(layer), 0))
        layers[id(layer)] = layer
        seen[id(layer)] = min(seen.get(id(layer), first_seen[id(node.layer)]), first_seen[id(node.layer)])
    return sorted(layers.values(), key=lambda l: (-depth[id(l)], seen[id(l)]))


class Functional(Model):
    """A model defined by its input and output tensors (``keras.Model(inputs, outputs)``).

    ``inputs``/``outputs``: a KerasTensor, a list/tuple of them, or a dict
    of them by name (dict outputs key ``y`` by those names in fit)."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._set_graph(inputs, outputs)
        if not trainable:
            self.trainable = False

    _traced = False

    def _default_name(self):
        from ..layers.base import unique_name
        return unique_name("functional")    # "functional", then "functional_1", ... as Keras 3

    def _set_graph(self, inputs, outputs):
        in_list, out_list = flatten(inputs), flatten(outputs)
        for what, given, flat in (("inputs", inputs, in_list), ("outputs", outputs, out_list)):
            if not flat or (not isinstance(given, (KerasTensor, list, tuple, dict))):
                raise ValueError(f"Model {what} must be KerasTensors (keras.Input(...) or a layer's output), or a "
                                 f"list or dict of them; got {given!r}")
        for t in in_list:
            layer = t._keras_history[0] if t._keras_history else None
            if not isinstance(layer, InputLayer):
                raise ValueError(f"Model inputs must come from keras.Input(...); {t} was made by "
                                 f"{getattr(layer, 'name', None)!r}")
        self._nodes = walk(in_list, out_list)
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self._in, self._out = in_list, out_list
        self._output_keys = list(outputs) if isinstance(outputs, dict) else None
        self._layers = keras_layer_order(in_list, out_list)
        # Weights another model already holds in its buffer stay there until
        # this model runs (a model built from another model's tensors); fresh
        # ones are packed now, so the flat buffer exists as soon as the model does.
        if not any(w.value.base is not None for layer in self._all_layers() for w in layer.weights):
            self._pack()

    def _graph(self):
        return self._in, self._nodes, self._out

    @property
    def built(self):
        return True

    def build(self, input_shape=None):
        """A functional model is built when it is made."""

    @property
    def output_names(self):
        if self._output_keys is not None:
            return list(self._output_keys)
        return [t._keras_history[0].name for t in self._out]

    @property
    def input_names(self):
        if isinstance(self._inputs_struct, dict):
            return list(self._inputs_struct)
        return [t._keras_history[0].name for t in self._in]

    @property
    def layers(self):
        """Every layer of the graph, InputLayers included, in Keras 3's order (``keras_layer_order``)."""
        return list(self._layers)

    def _all_layers(self):
        return [l for l in self._layers if not isinstance(l, InputLayer)]

    # -- config ----------------------------------------------------------
    def get_config(self):
        """Keras 3's functional config: ``{"name", "trainable", "layers",
        "input_layers", "output_layers"}``.

        ``layers`` lists each layer (``model.layers`` order, with the model's own
        keras.ops calls in their place: an Embedding(mask_zero=True)'s mask is a
        ``NotEqual`` operation of ``args [ids, 0]``) as its Keras record plus
        ``"name"`` and ``"inbound_nodes"``: one ``{"args": [...], "kwargs":
        {...}}`` per call of the layer inside this model (kwargs: the tensor
        call arguments, a recurrent layer's ``initial_state`` and ``mask``), a tensor
        written as ``{"class_name": "__keras_tensor__", "config": {"shape",
        "dtype", "keras_history": [layer, node, tensor]}}`` and a merge
        layer's inputs as one list. Node indices count only this model's
        calls of a layer (a layer also called by another model keeps its
        numbers here). ``input_layers`` / ``output_layers`` have the
        structure the model was given: ``[name, node, 0]`` for one tensor, a
        list of them for a list, a dict for a dict."""
        from .. import layers as layers_module
        own = {id(node) for node in self._nodes} | {id(t.node) for t in self._in}
        operations = keras_layer_order(self._in, self._out, with_ops=True)
        index = {}      # id(node) -> its index among the layer's calls in this model
        for layer in operations:
            kept = [n for n in layer._inbound_nodes if id(n) in own]
            index.update({id(n): i for i, n in enumerate(kept)})

        def tensor_ref(t):
            layer, node_index, tensor_index = t._keras_history
            return [layer.name, index[id(layer._inbound_nodes[node_index])], tensor_index]

        def tensor_record(t):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(t.shape), "dtype": t.dtype, "keras_history": tensor_ref(t)}}

        records = []
        for layer in operations:
            if getattr(layer, "hidden", False):     # a keras.ops call of the model's own (an Embedding's mask)
                record, args = layer.keras_record()
                nodes = [{"args": [tensor_record(a) if isinstance(a, KerasTensor) else a for a in args],
                          "kwargs": {}}]
            else:
                record = layers_module.serialize(layer)
                nodes = [{"args": [tensor_record(n.inputs) if isinstance(n.inputs, KerasTensor)
                                   else [tensor_record(t) for t in n.inputs]],
                          "kwargs": {**{k: _map_structure(tensor_record, n.kwargs[k]) for k in Node.TENSOR_KWARGS
                                        if n.kwargs.get(k) is not None}, **_training_kwarg(n)}}
                         for n in layer._inbound_nodes if id(n) in own and n.input_tensors]
            record["name"] = layer.name
            record["inbound_nodes"] = nodes
            records.append(record)
        return {"name": self.name, "trainable": self.trainable, "layers": records,
                "input_layers": _map_structure(tensor_ref, self._inputs_struct),
                "output_layers": _map_structure(tensor_ref, self._outputs_struct)}

    @classmethod
    def from_config(cls, config):
        """The model a functional config (Keras's or fastnn's) describes.

        Layers are made from fastnn's registry (``layers.deserialize``:
        nothing the file names is imported or called), keras.ops operations
        (an Embedding's NotEqual mask) from ``ops.graph.KERAS_OPERATIONS``,
        and called on each other's outputs as the inbound nodes say, in Keras's order: a node
        whose inputs do not exist yet waits for a later pass."""
        from .. import layers as layers_module
        from ..layers.base import check_float32
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Functional model config must be a dict with a 'layers' list")
        for key in ("input_layers", "output_layers"):
            if key not in config:
                raise ValueError(f"A Functional model config needs {key!r} (this one has keys {sorted(config)})")
        check_float32(config.get("dtype"), f"Model {config.get('name')!r}")
        created, pending, order = {}, {}, []
        for record in config["layers"]:
            if not isinstance(record, dict):
                raise ValueError(f"A functional config's layer entry must be a dict, got {type(record).__name__}")
            name = record.get("name", (record.get("config") or {}).get("name"))
            if not isinstance(name, str) or name in created:
                raise ValueError(f"Each layer of a functional config needs a unique name, got {name!r}")
            nodes = record.get("inbound_nodes", [])
            if not isinstance(nodes, list):
                raise ValueError(f"Layer {name!r}: 'inbound_nodes' must be a list")
            if _is_operation(record):     # a keras.ops call of the model's own (an Embedding's mask)
                layer = _Operation(record, name)
            else:
                layer = layers_module.deserialize({k: v for k, v in record.items()
                                                   if k not in ("name", "inbound_nodes")})
                layer.name = name
            created[name] = layer
            pending[name] = list(nodes)
            order.append(name)

        def tensor(ref):
            if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)
                    and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ref[1:])):
                raise ValueError(f"A tensor reference must be [layer name, node index, tensor index], got {ref!r}")
            layer = created.get(ref[0])
            if layer is None:
                raise ValueError(f"The config refers to a layer {ref[0]!r} it does not define")
            if ref[1] >= len(layer._inbound_nodes):
                raise _NotYet()
            outputs = layer._inbound_nodes[ref[1]].outputs
            if ref[2] >= len(outputs):
                raise ValueError(f"Layer {ref[0]!r} has no output {ref[2]} at node {ref[1]}")
            return outputs[ref[2]]

        def argument(value, numbers=False):
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                return tensor((value.get("config") or {}).get("keras_history"))
            if isinstance(value, list):
                return [argument(v) for v in value]
            if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
                return value        # an operation's number argument: not_equal(ids, 0)
            raise ValueError(f"A node argument must be a tensor record or a list of them, got {value!r:.80}")

        while any(pending.values()):
            progressed = False
            for name in order:
                while pending[name]:
                    node = pending[name][0]
                    if isinstance(created[name], _Operation):
                        try:
                            created[name].call(node, lambda a: argument(a, numbers=True))
                        except _NotYet:
                            break
                        pending[name].pop(0)
                        progressed = True
                        continue
                    kwargs = _node_kwargs(node, name)
                    if not isinstance(node, dict) or not isinstance(node.get("args"), list) \
                            or len(node["args"]) != 1:
                        raise ValueError(f"Layer {name!r}: a node must be {{'args': [inputs], 'kwargs': {{}}}}, "
                                         f"got {node!r:.120}")
                    try:
                        inputs = argument(node["args"][0])
                        kwargs = {k: argument(v) if k in Node.TENSOR_KWARGS else v for k, v in kwargs.items()}
                    except _NotYet:
                        break
                    created[name](inputs, **kwargs)
                    pending[name].pop(0)
                    progressed = True
            if not progressed:
                raise ValueError("Invalid functional model config: the layer graph has a cycle or refers to "
                                 f"calls that never happen ({sorted(k for k, v in pending.items() if v)})")
        inputs = _map_structure(tensor, config["input_layers"], leaf=_is_ref)
        outputs = _map_structure(tensor, config["output_layers"], leaf=_is_ref)
        model = cls(inputs, outputs, name=config.get("name"))
        if config.get("trainable") is False:
            model.trainable = False
        return model


def _training_kwarg(node):
    """``training`` as Keras records it, where the call fixed it (``layer(x, training=True)``)."""
    training = node.kwargs.get("training")
    return {} if training is None else {"training": bool(training)}


def _node_kwargs(node, name):
    """A node's call arguments fastnn passes on: the tensor ones (``Node.TENSOR_KWARGS``) and
    ``training: true``. Keras 3 also writes ``training: false`` and ``mask: null`` on nodes whose call
    never fixed them (a plain recurrent layer's call), and ignores them in fit and predict, so those
    are dropped: a ``training=False`` fixed in fastnn does not survive a file. A mask given as a
    tensor (the output of an Embedding's NotEqual operation, or a user's) is passed on."""
    kwargs = node.get("kwargs") or {} if isinstance(node, dict) else {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"Layer {name!r}: a node's kwargs must be a dict, got {kwargs!r:.120}")
    for key, value in kwargs.items():
        if key == "training" and value in (None, False, True) or key == "mask" and value is None:
            continue
        if key not in Node.TENSOR_KWARGS:
            raise ValueError(f"Layer {name!r}: a node's call argument {key}={value!r:.80} is not supported "
                             f"(fastnn takes {', '.join(Node.TENSOR_KWARGS)} and training)")
    taken = {k: v for k, v in kwargs.items() if k in Node.TENSOR_KWARGS and v is not None}
    if kwargs.get("training") is True:
        taken["training"] = True
    return taken


class _NotYet(Exception):
    """A node reads a layer call that has not been made yet."""


def _is_operation(record):
    """Whether a config's layer entry is a keras.ops operation (Keras 3 writes module keras.src.ops.*)."""
    module = record.get("module")
    return isinstance(module, str) and (module.startswith("keras.src.ops.") or module.startswith("keras.ops"))


class _Operation:
    """An operation of a functional config (``ops.graph.KERAS_OPERATIONS``, looked up by name:
    nothing is imported): its node calls the fastnn op on the node's arguments, tensors and numbers,
    and the op keeps the config's name."""

    def __init__(self, record, name):
        from ..ops.graph import KERAS_OPERATIONS
        class_name = record.get("class_name")
        if class_name not in KERAS_OPERATIONS or record.get("registered_name") not in (None, class_name):
            raise ValueError(f"{name!r} is a keras.ops operation {class_name!r} (module {record.get('module')!r}), "
                             f"which fastnn does not load; of these it loads {sorted(KERAS_OPERATIONS)}")
        self.name, self.function = name, KERAS_OPERATIONS[class_name]
        self._inbound_nodes = []

    def call(self, node, argument):
        """Makes the call ``node`` (``{"args": [...], "kwargs": {}}``) records; ``argument`` turns a
        recorded argument into a tensor or number (raising _NotYet for a tensor not made yet)."""
        from .. import ops
        if self._inbound_nodes:
            raise ValueError(f"Operation {self.name!r} has more than one inbound node; fastnn loads one")
        if not isinstance(node, dict) or not isinstance(node.get("args"), list) or node.get("kwargs") or \
                not any(isinstance(a, dict) for a in node["args"]):
            raise ValueError(f"Operation {self.name!r}: a node must be {{'args': [tensors and numbers], 'kwargs': "
                             f"{{}}}} with a tensor among the args, got {node!r:.120}")
        args = [argument(a) for a in node["args"]]
        try:
            out = getattr(ops, self.function)(*args)
        except TypeError as e:
            raise ValueError(f"Operation {self.name!r}: keras.ops.{self.function} cannot take the node's "
                             f"arguments ({e})") from None
        layer = out._keras_history[0]
        layer.name = self.name
        self._inbound_nodes.append(layer._inbound_nodes[0])


def _is_ref(value):
    return isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)


def _map_structure(fn, structure, leaf=lambda v: isinstance(v, KerasTensor)):
    """``fn`` on each leaf of a tensor / list / tuple / dict structure, keeping
    lists, tuples (as lists: JSON has no tuples) and dicts."""
    if leaf(structure):
        return fn(structure)
    if isinstance(structure, dict):
        return {k: _map_structure(fn, v, leaf) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_map_structure(fn, v, leaf) for v in structure]
    raise ValueError(f"Model inputs/outputs must be tensors, lists or dicts of them, got {structure!r:.80}")


def eager_call(layer, inputs, builtin=False, training=None, mask=None):
    """``layer(arrays)``: the layer's output on NumPy inputs, computed by a
    one-layer model (built for their shape if needed) in inference mode, or
    with ``training=True`` in training mode on all the rows at once, as
    Keras's call: Dropout draws masks, BatchNormalization normalizes by the
    batch's statistics and updates its moving ones, as Keras 3 does eagerly.
    ``builtin``: the layer's own op even where a subclass overrides ``call``;
    ``mask``: an array of one value per sample and step (0 or False: a masked
    step) for a layer that takes one, a model input of its own."""
    from ..layers.core import Input
    kwargs = {} if training is None else {"training": bool(training)}

    def call(symbolic):
        return layer._node(symbolic, kwargs) if builtin else layer(symbolic, **kwargs)

    # the one-layer model and its inputs are fastnn's own: named, so they take no automatic
    # name (Keras's eager call makes no model, and "input_layer", "functional" stay free)
    if isinstance(inputs, (list, tuple)):
        arrays = [np.asarray(a, dtype=np.float32) for a in inputs]
        symbolic = [Input(shape=a.shape[1:], name=f"eager_input_{i}") for i, a in enumerate(arrays)]
        model = Functional(symbolic, call(symbolic), name="eager_call")
        return model.predict(arrays, verbose=0, batch_size=max(1, len(arrays[0])))
    arr = np.asarray(inputs, dtype=np.float32)
    if arr.ndim < 2:
        raise ValueError(f"Layer {layer.name!r} called on an array of shape {arr.shape}; arrays need a batch "
                         "dimension first, shape (samples, *features)")
    symbolic = Input(shape=arr.shape[1:], name="eager_input")
    if mask is None:
        model = Functional(symbolic, call(symbolic), name="eager_call")
        return model.predict(arr, verbose=0, batch_size=max(1, arr.shape[0]))
    mask = np.asarray(mask)
    if mask.shape != arr.shape[:2]:
        raise ValueError(f"Layer {layer.name!r}: mask of shape {mask.shape} for inputs of shape {arr.shape}; "
                         f"a mask has one value per sample and step, shape {arr.shape[:2]}")
    kwargs["mask"] = Input(shape=mask.shape[1:], name="eager_mask")
    model = Functional([symbolic, kwargs["mask"]], call(symbolic), name="eager_call")
    return model.predict([arr, (mask != 0).astype(np.float32)], verbose=0, batch_size=max(1, arr.shape[0]))
