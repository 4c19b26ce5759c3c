"""Symbolic tensors and the nodes that connect layers into a graph.

Calling a layer on ``KerasTensor``s (``keras.Input(...)`` or another
layer's output) records a ``Node``: the layer, the tensors it read, the
tensors it made. A model is the walk from its outputs back to its inputs
(``models.functional``); nothing is computed until the model runs.
"""
import math

from .operators import Operators


class KerasTensor(Operators):
    """A placeholder for a batch of values: ``shape`` is ``(None, *per_sample)``,
    ``dtype`` "float32" (or the dtype an op gives: "bool", "int32"; all are held as float32 in the compiled
    program). ``_keras_history`` is (layer, node index, tensor index). Python operators are ``keras.ops``
    calls (``layers.operators``)."""

    def __init__(self, shape, name=None, dtype="float32"):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self._keras_history = None
        # Keras's mask, for sequences: a tensor of one value per step whose zeros mark the masked
        # steps (an Embedding(mask_zero=True)'s ``ids != 0``, or a call's mask=), or None.
        self._mask = None
        # "mean" or "sum" for a reduction over the batch axis too (ops.mean / ops.sum with axis=None):
        # held as each sample's share, which only add_loss may take (see ops.graph.batch_reduce).
        self._batch_reduction = None

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def sample_shape(self):
        return self.shape[1:]

    @property
    def sample_size(self):
        return math.prod(self.shape[1:])

    @property
    def node(self):
        layer, node_index, _ = self._keras_history
        return layer._inbound_nodes[node_index]

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError("A symbolic KerasTensor has no values: it stands for the data a model will be given. "
                        "Use fastnn.ops (or layers) on it inside a model, and NumPy on real arrays")

    def __bool__(self):
        raise TypeError("A symbolic KerasTensor cannot be used as a Python bool: branches on data values cannot "
                        "be traced into a model")


# The layers whose own ``call`` is being traced, outermost first: the nodes
# recorded meanwhile belong to the outermost one (``Node.owner``).
_TRACING = []


def current_owner():
    """The outermost layer whose ``call`` is being traced, or None."""
    return _TRACING[0] if _TRACING else None


# The training= of the layer calls being run (traced or eager), innermost last: a
# layer called inside one without its own training= takes it, as Keras's call context does.
_TRAINING = []


def current_training():
    """The training= the enclosing layer calls give (True, False, or None: each run's mode)."""
    return _TRAINING[-1] if _TRAINING else None


# The add_loss terms of the layer calls being traced, innermost last (``Layer._trace_call``).
_ADDED = []


class Node:
    """One call of ``layer``: ``inputs`` is the call's input structure (a
    tensor or a list of tensors), ``outputs`` the tensors it made,
    ``kwargs`` the call's keyword arguments (e.g. ``training``, ``mask``). ``owner``:
    the layer whose traced ``call`` made this node (None at the top level);
    the model lists that layer instead of the layers and ops inside it."""

    # Call arguments that carry tensors, in the order the op reads them after the call's inputs:
    # the recurrent layers' initial states, then the mask (one value per step, 0: a masked step).
    TENSOR_KWARGS = ("initial_state", "mask")

    def __init__(self, layer, inputs, outputs, kwargs=None):
        self.layer = layer
        self.owner = current_owner()
        self.inputs = inputs
        self.kwargs = dict(kwargs or {})
        self.input_tensors = flatten(inputs) + flatten([self.kwargs.get(k) for k in self.TENSOR_KWARGS])
        self.mask = self.kwargs.get("mask")
        self.outputs = outputs

    @property
    def parents(self):
        """Nodes that made this node's inputs."""
        return [t.node for t in self.input_tensors]

    @property
    def op_tensors(self):
        """The tensors the layer's op reads: the inputs, the initial states, and the mask where the
        layer reads one (a TimeDistributed layer is given its input's mask, as in Keras, and ignores it)."""
        if self.mask is None or getattr(self.layer, "reads_mask", False):
            return self.input_tensors
        return self.input_tensors[:-1]

    @property
    def input_shape(self):
        """Per-sample shape of the input (a list of shapes for several inputs, initial states
        included; the mask is not an input's shape)."""
        tensors = self.input_tensors[:-1] if self.mask is not None else self.input_tensors
        if isinstance(self.inputs, KerasTensor) and len(tensors) == 1:
            return self.inputs.sample_shape
        return [t.sample_shape for t in tensors]


def flatten(structure):
    """The tensors of a tensor / list / tuple / dict structure, in order (dicts by insertion)."""
    if isinstance(structure, KerasTensor):
        return [structure]
    if isinstance(structure, dict):
        return [t for v in structure.values() for t in flatten(v)]
    if isinstance(structure, (list, tuple)):
        return [t for v in structure for t in flatten(v)]
    return []


def is_symbolic(structure):
    """True when ``structure`` holds any KerasTensor."""
    return bool(flatten(structure))


def model_layer(node):
    """The layer a model lists for ``node``: its owner, else its layer unless
    that is a hidden op (``ops.graph.OpLayer``), else None."""
    if node.owner is not None:
        return node.owner
    return None if getattr(node.layer, "hidden", False) else node.layer
