"""Functional models: ``keras.Model(inputs, outputs)``, and subclassed models traced into one.

The model is the walk from its output tensors back to its inputs through
the layer calls that made them (``layers.node``); the calls, in an order
where each comes after the calls it reads, are what ``models.program``
compiles. A ``Model`` subclass with its own ``call`` is traced once, on
symbolic inputs of the data's shapes, into the same kind of graph.
"""
import numpy as np

from ..layers.core import InputLayer
from ..layers.node import KerasTensor, flatten, model_layer
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
        return "functional"

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
        layers, seen = [], set()
        for t in in_list:
            layer = t._keras_history[0]
            if id(layer) not in seen:
                seen.add(id(layer))
                layers.append(layer)
        for node in self._nodes:
            layer = model_layer(node)
            if layer is not None and id(layer) not in seen:
                seen.add(id(layer))
                layers.append(layer)
        self._layers = layers
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
        """InputLayers first, then every layer in the graph's order (Keras 3's ``Functional.layers``)."""
        return list(self._layers)

    def _all_layers(self):
        return [l for l in self._layers if not isinstance(l, InputLayer)]


def eager_call(layer, inputs, builtin=False):
    """``layer(arrays)``: the layer's output on NumPy inputs, computed by a
    one-layer model in inference mode (built for their shape if needed).
    ``builtin``: the layer's own op even where a subclass overrides ``call``."""
    from ..layers.core import Input

    def call(symbolic):
        return layer._node(symbolic, {}) if builtin else layer(symbolic)

    if isinstance(inputs, (list, tuple)):
        arrays = [np.asarray(a, dtype=np.float32) for a in inputs]
        symbolic = [Input(shape=a.shape[1:]) for a in arrays]
        model = Functional(symbolic, call(symbolic))
        return model.predict(arrays, verbose=0, batch_size=max(1, len(arrays[0])))
    arr = np.asarray(inputs, dtype=np.float32)
    if arr.ndim < 2:
        raise ValueError(f"Layer {layer.name!r} called on an array of shape {arr.shape}; arrays need a batch "
                         "dimension first, shape (samples, *features)")
    symbolic = Input(shape=arr.shape[1:])
    model = Functional(symbolic, call(symbolic))
    return model.predict(arr, verbose=0, batch_size=max(1, arr.shape[0]))
