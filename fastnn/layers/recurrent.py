"""Recurrent layers: SimpleRNN, LSTM, GRU and the Bidirectional wrapper
(maths in ``kernels/kinds/recurrent.py``).

Input ``(timesteps, features)`` per sample; output ``(units,)``, or
``(timesteps, units)`` with ``return_sequences=True``. Weights in Keras 3's
order and layout: kernel ``(features, G * units)``, recurrent_kernel
``(units, G * units)``, bias ``(G * units,)`` (GRU with reset_after=True,
the default: ``(2, 3 * units)``, the input bias then the recurrent bias),
with G = 1, 4 (gates i, f, c, o), 3 (gates z, r, h). Keras keeps them in the layer's ``cell``; a
``.weights.h5`` file has them at ``layers/<lstm>/cell/vars``.

A mask reaches these layers through the model's graph, as in Keras: an
``Embedding(mask_zero=True)``'s (``ids != 0``), or one given as ``layer(x,
mask=m)`` (m of shape (None, timesteps), e.g. ``keras.ops.not_equal(ids, 0)``).
Masked steps keep the state. A call with ``initial_state`` reads only a mask=
it is given: Keras passes no input mask there, so every step runs.
``dropout`` drops input features and ``recurrent_dropout`` the recurrent
state, with masks drawn per sequence and kept for every step, as Keras 3
does (training only).
``return_state=True`` adds the final states as outputs (a list: output, h,
and c for an LSTM); ``layer(x, initial_state=[h, c])`` starts from given
states (an encoder-decoder model), and their gradients flow back. Not
supported, with a ValueError: ``stateful`` (use return_state and
initial_state), activations other than tanh, sigmoid, relu and linear.
``unroll`` is accepted and changes nothing (the loop is compiled).
"""
import math
import numbers

import numpy as np

from .. import activations, initializers, regularizers
from ..kernels.kinds import recurrent as R
from .base import Layer, Op

_CELL_NAMES = {R.SIMPLE_RNN: "simple_rnn_cell", R.LSTM: "lstm_cell", R.GRU: "gru_cell"}


def _rate(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{what} must be in [0, 1), got {value!r}")
    return float(value)


def _activation(identifier, what):
    fn = activations.get(identifier)
    if fn.code not in R.ACTIVATIONS:
        raise ValueError(f"{what}={activations.serialize(fn)!r} is not supported in recurrent layers; fastnn's "
                         "recurrent kernels take tanh, sigmoid, relu or linear")
    return fn


class _RNN(Layer):
    """The options every recurrent layer shares; subclasses set ``cell``."""
    cell = None
    takes_mask = reads_mask = True
    keras_fixed = {"kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None}

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{kind} units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = _activation(activation, f"{kind} activation")
        self.recurrent_activation = _activation(recurrent_activation, f"{kind} recurrent_activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        if activity_regularizer is not None:
            raise ValueError(f"{kind} activity_regularizer is not supported")
        if kernel_constraint is not None or recurrent_constraint is not None or bias_constraint is not None:
            raise ValueError(f"{kind} weight constraints are not supported")
        self.dropout = _rate(dropout, f"{kind} dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, f"{kind} recurrent_dropout")
        if stateful:
            raise ValueError(f"{kind}(stateful=True) is not supported: fastnn starts every batch from zero states. To "
                             "carry states from one call to the next, use return_state=True and pass the states "
                             "back with initial_state=[...] (for example in an encoder-decoder model)")
        self.return_sequences, self.go_backwards = bool(return_sequences), bool(go_backwards)
        self.return_state = bool(return_state)
        self.unroll = bool(unroll)   # the time loop is compiled either way
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.kernel = self.recurrent_kernel = self.bias = None

    # -- shapes and weights ---------------------------------------------------
    def compute_output_shape(self, input_shape):
        """(timesteps, units) with return_sequences, else (units,); with return_state a list: that
        shape, then (units,) per state (h, and c for an LSTM)."""
        if isinstance(input_shape, list) or len(input_shape) != 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} needs inputs of shape (timesteps, features), got "
                             f"{input_shape if isinstance(input_shape, list) else (None, *input_shape)}")
        out = (input_shape[0], self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [out] + [(self.units,)] * R.n_states(self.cell)
        return out

    def _bias_shape(self):
        return (R.gates(self.cell) * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        g = R.gates(self.cell) * self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], g), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, g), self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                                        regularizer=self.bias_regularizer)

    # -- calls -----------------------------------------------------------------
    def __call__(self, inputs, *args, initial_state=None, **kwargs):
        """As any layer; ``initial_state``: the starting states, a list of symbolic tensors of shape
        (None, units): [h] (SimpleRNN, GRU) or [h, c] (LSTM), e.g. another layer's return_state
        outputs. Their gradients flow back to whatever made them."""
        if initial_state is None:
            return super().__call__(inputs, *args, **kwargs)
        return _call_with_states(self, inputs, args, initial_state, kwargs, 1)

    def get_build_config(self):
        return _build_config(self, super().get_build_config())

    # -- the program ---------------------------------------------------------
    def output_mask(self, inputs, mask):
        return mask if self.return_sequences else None

    def op_ints(self, input_shape, directions=1, merge=0, zero_output=None):
        """The op's integer constants (``kernels.kinds.recurrent``'s I_*) and its scratch per sample, for
        ``input_shape`` (timesteps, features), or a list: that, then the initial states' shapes."""
        states = isinstance(input_shape, list)
        t, f = input_shape[0] if states else input_shape
        per_gate = self.recurrent_dropout > 0     # Keras's implementation 1: masks per gate block
        ints = [0] * R.N_INTS
        ints[R.I_CELL], ints[R.I_T], ints[R.I_F], ints[R.I_U] = self.cell, t, f, self.units
        ints[R.I_ACT], ints[R.I_REC_ACT] = self.activation.code, self.recurrent_activation.code
        ints[R.I_RETURN_SEQUENCES], ints[R.I_GO_BACKWARDS] = int(self.return_sequences), int(self.go_backwards)
        ints[R.I_DIRECTIONS], ints[R.I_MERGE] = directions, merge
        ints[R.I_DIR_WEIGHTS] = sum(w.size for w in self.weights)
        ints[R.I_USE_BIAS] = int(self.use_bias)
        ints[R.I_ZERO_OUTPUT] = int(self.zero_output_for_mask if zero_output is None else zero_output)
        reset_after = getattr(self, "reset_after", True)
        ints[R.I_RESET_AFTER] = int(reset_after)
        ints[R.I_X_BLOCKS] = R.gates(self.cell) if per_gate and self.dropout > 0 else 1
        ints[R.I_H_SEPARATE] = int(per_gate or not reset_after)
        ints[R.I_REC_MASK] = int(per_gate)
        ints[R.I_RETURN_STATE] = int(self.return_state)
        ints[R.I_INITIAL_STATE] = int(states)
        ints[R.I_READS] = -1        # every output; the program builder writes which are read
        ints[R.I_DIR_SCRATCH] = per_dir = R.scratch_per_direction(ints)
        return ints, per_dir * directions

    def op(self, input_shape):
        _check_adjacent(self.weights, self.name)
        ints, scratch = self.op_ints(input_shape)
        return Op(R.KINDS[self.cell], w=self.kernel, b=self.bias, consts=(self.dropout, self.recurrent_dropout), ints=ints,
                  scratch=scratch, reads_at=R.I_READS)

    # -- saving ----------------------------------------------------------------
    def keras_weight_groups(self):
        """Keras keeps the weights in the layer's cell: [(sub-path, group name, variables)]."""
        return [("", self.name, []), ("/cell", _CELL_NAMES[self.cell], self.weights)]

    def get_config(self):
        config = {**super().get_config(), "return_sequences": self.return_sequences, "return_state": self.return_state,
                  "go_backwards": self.go_backwards, "stateful": False, "unroll": self.unroll,
                  "zero_output_for_mask": self.zero_output_for_mask, "units": self.units,
                  "activation": activations.serialize(self.activation)}
        if self.cell != R.SIMPLE_RNN:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        config.update({"use_bias": self.use_bias,
                       "kernel_initializer": initializers.serialize(self.kernel_initializer),
                       "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                       "bias_initializer": initializers.serialize(self.bias_initializer)})
        if self.cell == R.LSTM:
            config["unit_forget_bias"] = self.unit_forget_bias
        config.update({"kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                       "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                       "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                       "activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
                       "bias_constraint": None, "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout})
        return config


def _call_with_states(layer, inputs, args, initial_state, kwargs, directions):
    """``layer(inputs, initial_state=...)`` in a model's graph, after checking the states: a list of
    symbolic tensors of shape (None, units), n_states(cell) per direction."""
    from .node import KerasTensor
    if args:
        raise TypeError(f"Layer {layer.name!r} takes one input tensor and initial_state=, got {1 + len(args)} "
                        "positional arguments")
    unknown = set(kwargs) - {"training", "mask"}
    if unknown:
        raise TypeError(f"Layer {layer.name!r} got unexpected call arguments {sorted(unknown)}")
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    cell = layer.forward_layer if directions == 2 else layer
    units, want = cell.units, directions * R.n_states(cell.cell)
    if not isinstance(inputs, KerasTensor) or not all(isinstance(s, KerasTensor) for s in states):
        raise ValueError(f"Layer {layer.name!r}: initial_state= is supported in a model's graph, on symbolic tensors "
                         "(keras.Input or other layers' outputs); on arrays, build a model with the states as inputs")
    if len(states) != want:
        which = (" (h, c)" if cell.cell == R.LSTM else "") + (", forward then backward" if directions == 2 else "")
        raise ValueError(f"Layer {layer.name!r} ({type(cell).__name__}) takes {want} initial state tensors{which}, "
                         f"got {len(states)}")
    for s in states:
        if tuple(s.sample_shape) != (units,):
            raise ValueError(f"Layer {layer.name!r}: an initial state must have shape (None, {units}), got {s.shape}")
    return layer._node(inputs, {**kwargs, "initial_state": states})


def _build_config(layer, plain):
    """Keras's ``build_config`` of a recurrent layer: ``plain``, but for a layer first called with
    initial_state= both shapes, ``{"shapes_dict": {"sequences_shape", "initial_state_shape"}}``."""
    states = layer._inbound_nodes[0].kwargs.get("initial_state") if layer._inbound_nodes else None
    if not states:
        return plain
    return {"shapes_dict": {"sequences_shape": [None, *layer.input_shape],
                            "initial_state_shape": [list(s.shape) for s in states]}}


def _check_adjacent(variables, name):
    """The kernels find the recurrent kernel and bias right after the kernel in the flat buffer."""
    for prev, var in zip(variables, variables[1:]):
        if var.value.__array_interface__["data"][0] != prev.value.__array_interface__["data"][0] + 4 * prev.size:
            raise RuntimeError(f"layer {name!r}: its weights are not adjacent in the model's buffer")


class SimpleRNN(_RNN):
    """Keras 3's SimpleRNN: ``h = activation(x @ kernel + bias + h_prev @ recurrent_kernel)``."""
    cell = R.SIMPLE_RNN

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", seed=None, **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer, **kwargs)
        self.seed = seed


class LSTM(_RNN):
    """Keras 3's LSTM (gates i, f, c, o; activation tanh, recurrent_activation
    sigmoid; ``unit_forget_bias=True`` starts the forget gate's bias at 1)."""
    cell = R.LSTM

    def __init__(self, units, unit_forget_bias=True, seed=None, use_cudnn="auto", **kwargs):
        super().__init__(units, **kwargs)
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"LSTM use_cudnn must be 'auto', True or False, got {use_cudnn!r}")
        self.unit_forget_bias, self.seed = bool(unit_forget_bias), seed

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        return _ForgetBias(self.bias_initializer, self.units)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class _ForgetBias(initializers.Initializer):
    """Keras's LSTM bias with unit_forget_bias: [init(u), ones(u), init(2u)]."""

    def __init__(self, init, units):
        self.init, self.units = init, units

    def __call__(self, shape, dtype=None):
        u = self.units
        return np.concatenate([self.init((u,)), np.ones(u, dtype=np.float32), self.init((2 * u,))]).astype(np.float32)


class GRU(_RNN):
    """Keras 3's GRU (gates z, r, h). ``reset_after=True`` (the default): the reset gate multiplies
    the recurrent product, bias (2, 3 * units) (input bias, then recurrent bias); ``reset_after=False``:
    it multiplies h_prev before the product, bias (3 * units,)."""
    cell = R.GRU

    def __init__(self, units, reset_after=True, seed=None, use_cudnn="auto", **kwargs):
        super().__init__(units, **kwargs)
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"GRU use_cudnn must be 'auto', True or False, got {use_cudnn!r}")
        self.reset_after, self.seed = bool(reset_after), seed

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after, "seed": self.seed}


_MERGES = {"concat": R.CONCAT, "sum": R.SUM, "mul": R.MUL, "ave": R.AVE, None: R.NO_MERGE}


class Bidirectional(Layer):
    """Keras 3's Bidirectional: ``layer`` runs forward and a copy runs
    backward (``go_backwards``, its sequence output put back in input
    order); their outputs merge by ``merge_mode`` "concat" (default), "sum",
    "mul" or "ave". Weights: the forward layer's, then the backward layer's.
    ``merge_mode=None`` returns both outputs. With the layer's ``return_state``, the outputs are
    followed by the forward layer's final states, then the backward layer's (Keras's order).
    ``initial_state=``: the forward states, then the backward ones."""
    keras_build_config = True
    takes_mask = reads_mask = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if isinstance(layer, dict):
            from . import deserialize
            layer = deserialize(layer)
        if not isinstance(layer, _RNN):
            raise ValueError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got {layer!r}")
        if merge_mode not in _MERGES:
            raise ValueError(f"Bidirectional merge_mode must be 'concat', 'sum', 'mul', 'ave' or None, "
                             f"got {merge_mode!r}")
        if weights is not None:
            raise ValueError("Bidirectional(weights=...) is not supported; call set_weights after building")
        super().__init__(**kwargs)
        config = layer.get_config()
        if backward_layer is None:
            backward = dict(config, name="backward_" + layer.name, go_backwards=not layer.go_backwards)
            backward_layer = type(layer).from_config(backward)
        elif isinstance(backward_layer, dict):
            from . import deserialize
            backward_layer = deserialize(backward_layer)
        if not isinstance(backward_layer, type(layer)):
            raise ValueError(f"Bidirectional backward_layer must be a {type(layer).__name__}, got {backward_layer!r}")
        if not backward_layer.go_backwards or layer.go_backwards:
            raise ValueError("Bidirectional needs a forward layer with go_backwards=False and a backward layer with "
                             "go_backwards=True")
        mine = {k: v for k, v in config.items() if k not in ("name", "go_backwards", "trainable")}
        theirs = {k: v for k, v in backward_layer.get_config().items() if k not in ("name", "go_backwards",
                                                                                     "trainable")}
        if mine != theirs:
            raise ValueError("Bidirectional's forward and backward layers must have the same configuration "
                             "(apart from name and go_backwards) in fastnn")
        if not layer.name.startswith("forward_"):
            layer.name = "forward_" + layer.name
        self.forward_layer, self.backward_layer = layer, backward_layer
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state
        self.masked_outputs = 2 if merge_mode is None else 1    # Keras masks both sequence outputs

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], shape[1:] * 2
        outputs = [(*shape[:-1], 2 * shape[-1])] if self.merge_mode == "concat" else \
            [shape, shape] if self.merge_mode is None else [shape]
        return outputs + states if len(outputs) + len(states) > 1 else outputs[0]

    def __call__(self, inputs, *args, initial_state=None, **kwargs):
        if initial_state is None:
            return super().__call__(inputs, *args, **kwargs)
        return _call_with_states(self, inputs, args, initial_state, kwargs, 2)

    def get_build_config(self):
        return _build_config(self, super().get_build_config())

    def build(self, input_shape):
        self.forward_layer.build_for(input_shape)
        self.backward_layer.build_for(input_shape)
        self._weights = self.forward_layer.weights + self.backward_layer.weights

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in (getattr(self, "forward_layer", None), getattr(self, "backward_layer", None)):
            if layer is not None:
                layer.trainable = value

    def output_mask(self, inputs, mask):
        return mask if self.return_sequences else None

    def op(self, input_shape):
        _check_adjacent(self.weights, self.name)
        fwd = self.forward_layer
        # Keras's Bidirectional zeroes the masked steps' outputs when it returns sequences.
        ints, scratch = fwd.op_ints(input_shape, 2, _MERGES[self.merge_mode], zero_output=self.return_sequences)
        return Op(R.KINDS[fwd.cell], w=fwd.kernel, b=fwd.bias, consts=(fwd.dropout, fwd.recurrent_dropout), ints=ints,
                  scratch=scratch, reads_at=R.I_READS)

    def keras_weight_groups(self):
        groups = [("", self.name, [])]
        for attr, layer in (("forward_layer", self.forward_layer), ("backward_layer", self.backward_layer)):
            groups += [(f"/{attr}{sub}", name, variables) for sub, name, variables in layer.keras_weight_groups()]
        return groups

    def get_config(self):
        from . import serialize
        return {**super().get_config(), "merge_mode": self.merge_mode, "layer": serialize(self.forward_layer),
                "backward_layer": serialize(self.backward_layer)}
