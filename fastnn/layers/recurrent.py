"""Recurrent layers: SimpleRNN, LSTM, GRU and the Bidirectional wrapper
(maths in ``kernels/kinds/recurrent.py``).

Input ``(timesteps, features)`` per sample; output ``(units,)``, or
``(timesteps, units)`` with ``return_sequences=True``. Weights in Keras 3's
order and layout: kernel ``(features, G * units)``, recurrent_kernel
``(units, G * units)``, bias ``(G * units,)`` (GRU: ``(2, 3 * units)``, the
input bias then the recurrent bias), with G = 1, 4 (gates i, f, c, o), 3
(gates z, r, h). Keras keeps them in the layer's ``cell``; a
``.weights.h5`` file has them at ``layers/<lstm>/cell/vars``.

A mask from ``Embedding(mask_zero=True)`` reaches these layers through the
model's graph: masked steps keep the state, as in Keras. ``dropout`` drops
input features with one mask per sequence (training only). Not supported,
with a ValueError: ``recurrent_dropout`` > 0 (Keras switches to another
implementation for it), ``return_state``, ``stateful``, GRU
``reset_after=False``, activations other than tanh, sigmoid, relu and
linear. ``unroll`` is accepted and changes nothing (the loop is compiled).
"""
import math
import numbers

import numpy as np

from .. import activations, initializers, regularizers
from ..kernels import program as P
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


def sequence_mask(layer, node):
    """The token-id tensor that masks ``node``'s (one) input, after checking it
    has one id per step; None when the input carries no mask."""
    tensor = node.input_tensors[0]
    mask = getattr(tensor, "_mask_ids", None)
    if mask is None:
        return None
    if tuple(mask.sample_shape) != tuple(tensor.sample_shape[:1]):
        raise ValueError(f"Layer {layer.name!r}: its input's mask has shape {mask.sample_shape}, expected one value "
                         f"per timestep {tensor.sample_shape[:1]}")
    return mask


class _RNN(Layer):
    """The options every recurrent layer shares; subclasses set ``cell``."""
    cell = None
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
        if self.recurrent_dropout:
            raise ValueError(f"{kind}(recurrent_dropout={recurrent_dropout}) is not supported: fastnn's recurrent "
                             "kernels drop inputs only (dropout=); use recurrent_dropout=0")
        if return_state:
            raise ValueError(f"{kind}(return_state=True) is not supported: a fastnn layer has one output")
        if stateful:
            raise ValueError(f"{kind}(stateful=True) is not supported: every batch starts from zero states")
        self.return_sequences, self.go_backwards = bool(return_sequences), bool(go_backwards)
        self.unroll = bool(unroll)   # the time loop is compiled either way
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.kernel = self.recurrent_kernel = self.bias = None

    # -- shapes and weights ---------------------------------------------------
    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} needs inputs of shape (timesteps, features), got "
                             f"{input_shape if isinstance(input_shape, list) else (None, *input_shape)}")
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

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

    # -- the program ---------------------------------------------------------
    def mask_input(self, node):
        return sequence_mask(self, node)

    def output_mask(self, inputs):
        return getattr(inputs[0], "_mask_ids", None) if self.return_sequences else None

    def op_ints(self, input_shape, directions=1, merge=0, zero_output=None):
        t, f = input_shape
        per_dir = R.scratch_per_direction(self.cell, t, f, self.units, directions == 2, self.return_sequences)
        ints = [0] * R.N_INTS
        ints[R.I_CELL], ints[R.I_T], ints[R.I_F], ints[R.I_U] = self.cell, t, f, self.units
        ints[R.I_ACT], ints[R.I_REC_ACT] = self.activation.code, self.recurrent_activation.code
        ints[R.I_RETURN_SEQUENCES], ints[R.I_GO_BACKWARDS] = int(self.return_sequences), int(self.go_backwards)
        ints[R.I_DIRECTIONS], ints[R.I_MERGE] = directions, merge
        ints[R.I_DIR_WEIGHTS], ints[R.I_DIR_SCRATCH] = sum(w.size for w in self.weights), per_dir
        ints[R.I_USE_BIAS] = int(self.use_bias)
        ints[R.I_ZERO_OUTPUT] = int(self.zero_output_for_mask if zero_output is None else zero_output)
        return ints, per_dir * directions

    def op(self, input_shape):
        _check_adjacent(self.weights, self.name)
        ints, scratch = self.op_ints(input_shape)
        return Op(R.RECURRENT, w=self.kernel, b=self.bias, consts=(self.dropout,), ints=ints, scratch=scratch)

    # -- saving ----------------------------------------------------------------
    def keras_weight_groups(self):
        """Keras keeps the weights in the layer's cell: [(sub-path, group name, variables)]."""
        return [("", self.name, []), ("/cell", _CELL_NAMES[self.cell], self.weights)]

    def get_config(self):
        config = {**super().get_config(), "return_sequences": self.return_sequences, "return_state": False,
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
    """Keras 3's GRU with ``reset_after=True`` (gates z, r, h; bias (2, 3 * units))."""
    cell = R.GRU

    def __init__(self, units, reset_after=True, seed=None, use_cudnn="auto", **kwargs):
        super().__init__(units, **kwargs)
        if not reset_after:
            raise ValueError("GRU(reset_after=False) is not supported; fastnn runs Keras 3's default reset_after=True")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"GRU use_cudnn must be 'auto', True or False, got {use_cudnn!r}")
        self.reset_after, self.seed = True, seed

    def _bias_shape(self):
        return (2, 3 * self.units)

    def get_config(self):
        return {**super().get_config(), "reset_after": True, "seed": self.seed}


_MERGES = {"concat": R.CONCAT, "sum": R.SUM, "mul": R.MUL, "ave": R.AVE}


class Bidirectional(Layer):
    """Keras 3's Bidirectional: ``layer`` runs forward and a copy runs
    backward (``go_backwards``, its sequence output put back in input
    order); their outputs merge by ``merge_mode`` "concat" (default), "sum",
    "mul" or "ave". Weights: the forward layer's, then the backward layer's.
    ``merge_mode=None`` (two outputs) is not supported."""
    keras_build_config = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if isinstance(layer, dict):
            from . import deserialize
            layer = deserialize(layer)
        if not isinstance(layer, _RNN):
            raise ValueError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got {layer!r}")
        if merge_mode not in _MERGES:
            raise ValueError(f"Bidirectional merge_mode must be one of {sorted(_MERGES)}, got {merge_mode!r}"
                             + (" (None, two outputs, is not supported)" if merge_mode is None else ""))
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
        self.return_sequences = layer.return_sequences

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        return (*shape[:-1], 2 * shape[-1]) if self.merge_mode == "concat" else shape

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

    def mask_input(self, node):
        return sequence_mask(self, node)

    def output_mask(self, inputs):
        return getattr(inputs[0], "_mask_ids", None) if self.return_sequences else None

    def op(self, input_shape):
        _check_adjacent(self.weights, self.name)
        fwd = self.forward_layer
        # Keras's Bidirectional zeroes the masked steps' outputs when it returns sequences.
        ints, scratch = fwd.op_ints(input_shape, 2, _MERGES[self.merge_mode], zero_output=self.return_sequences)
        return Op(R.RECURRENT, w=fwd.kernel, b=fwd.bias, consts=(fwd.dropout,), ints=ints, scratch=scratch)

    def keras_weight_groups(self):
        groups = [("", self.name, [])]
        for attr, layer in (("forward_layer", self.forward_layer), ("backward_layer", self.backward_layer)):
            groups += [(f"/{attr}{sub}", name, variables) for sub, name, variables in layer.keras_weight_groups()]
        return groups

    def get_config(self):
        from . import serialize
        return {**super().get_config(), "merge_mode": self.merge_mode, "layer": serialize(self.forward_layer),
                "backward_layer": serialize(self.backward_layer)}
