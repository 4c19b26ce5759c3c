"""Input, Dense, Flatten, Reshape and Activation."""
import math

import numpy as np

from .. import activations, constraints, initializers, regularizers
from ..kernels import program as P
from .base import Layer, Op, check_float32, normalize_shape


# Integer inputs (token ids, counts, as text models declare them) are held as float32 like every value,
# which is exact up to 2**24: an Embedding checks its ids are whole numbers below its input_dim.
INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def input_dtype(dtype, what):
    """The dtype name an input declares: "float32" (for None or float32) or one of INTEGER_DTYPES (a
    name, a NumPy dtype or a Keras DTypePolicy dict of one); refuses others."""
    name = dtype
    if isinstance(dtype, dict) and isinstance(dtype.get("config"), dict):
        name = dtype["config"].get("name")
    elif dtype is not None and not isinstance(dtype, str):
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name in INTEGER_DTYPES:
        return name
    check_float32(dtype, what)
    return "float32"


class InputLayer(Layer):
    """Declares the per-sample input shape (and dtype: "float32", or an integer dtype for token ids,
    held as float32); ``Input(shape=...)`` makes one."""
    keras_build_config = False

    def __init__(self, shape=None, batch_size=None, name=None, input_shape=None, batch_shape=None, dtype=None,
                 **kwargs):
        if shape is None:
            shape = input_shape if input_shape is not None else (batch_shape[1:] if batch_shape else None)
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input(shape=(784,))")
        super().__init__(name=name, input_shape=shape, **kwargs)
        self.shape = self._input_shape_arg
        self.input_dtype = input_dtype(dtype, "Input")
        from .node import KerasTensor, Node
        tensor = KerasTensor((None, *self.shape), name=self.name, dtype=self.input_dtype)
        tensor._keras_history = (self, 0, 0)
        self._inbound_nodes.append(Node(self, [], [tensor]))
        self.input_shape = self.output_shape = self.shape
        self.built = True

    def get_config(self):
        return {"batch_shape": [None, *self.shape], "dtype": self.input_dtype, "sparse": False, "ragged": False,
                "name": self.name, "optional": False}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        what = f"InputLayer {config.get('name')!r}"
        dtype = input_dtype(config.pop("dtype", None), what)
        for key in ("sparse", "ragged", "optional"):
            if config.pop(key, False):
                raise ValueError(f"{what}: {key} inputs are not supported")
        bs = config.pop("batch_shape", None) or config.pop("batch_input_shape", None)
        if not isinstance(bs, (list, tuple)) or len(bs) < 2:
            raise ValueError(f"{what}: batch_shape must be a list [None, *shape], got {bs!r}")
        return cls(shape=tuple(bs[1:]), name=config.get("name"), dtype=dtype)


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None, **kwargs):
    """Keras's ``Input``: a symbolic tensor of per-sample ``shape``, the start
    of a functional model (or of a Sequential: ``model.add(Input(...))``)."""
    return InputLayer(shape=shape, name=name, batch_shape=batch_shape, dtype=dtype).output


class Flatten(Layer):
    keras_fixed = {"data_format": "channels_last"}

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}


class Reshape(Layer):
    keras_build_config = False

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        dims = target_shape if isinstance(target_shape, (tuple, list)) else (target_shape,)
        if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or (d <= 0 and d != -1)
                           for d in dims):
            raise ValueError(f"Reshape target_shape must be a tuple of positive integers (one may be -1), "
                             f"got {target_shape!r}")
        self.target_shape = tuple(int(d) for d in dims)

    def compute_output_shape(self, input_shape):
        n = math.prod(input_shape)
        shape = list(self.target_shape)
        if shape.count(-1) > 1:
            raise ValueError(f"Reshape {self.name!r}: at most one -1 in target_shape {self.target_shape}")
        if -1 in shape:
            known = math.prod(d for d in shape if d != -1)
            if known <= 0 or n % known:
                raise ValueError(f"Reshape {self.name!r}: cannot reshape {input_shape} to {self.target_shape}")
            shape[shape.index(-1)] = n // known
        if math.prod(shape) != n:
            raise ValueError(f"Reshape {self.name!r}: cannot reshape {input_shape} ({n} values) "
                             f"to {self.target_shape}")
        return normalize_shape(shape, "target_shape")

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dense(Layer):
    """``output = activation(input @ kernel + bias)``; kernel (in, units), bias (units,).

    ``kernel_regularizer`` / ``bias_regularizer``: a ``fastnn.regularizers``
    penalty (or its name), added to the loss while the layer is trainable."""
    propagates_mask = True
    keras_fixed = {"quantization_config": None, "lora_rank": None, "lora_alpha": None}

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if activity_regularizer is not None:
            raise ValueError("Dense activity_regularizer is not supported; use kernel_regularizer or bias_regularizer")
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation, self.activation_call = activations.resolve(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel = self.bias = None

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) or not input_shape:
            raise ValueError(f"Dense layer {self.name!r} needs one input of shape (..., features), got "
                             f"{input_shape}")
        return (*input_shape[:-1], self.units)

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def op(self, input_shape):
        # On N-D inputs Dense maps the last axis: each sample is that many rows.
        rows = math.prod(input_shape[:-1])
        return Op(P.DENSE, self.activation.code, self.kernel, self.bias, scratch=rows * self.units,
                  output_in_scratch=self.activation.code == activations.linear.code, rows=rows)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation, self.activation_call), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint), "quantization_config": None}


class Activation(Layer):
    propagates_mask = True
    keras_build_config = False

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation, self.activation_call = activations.resolve(activation)

    def op(self, input_shape):
        if self.activation.code == activations.linear.code:
            return None
        return Op(P.ACTIVATION, self.activation.code, ints=(input_shape[-1],))

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation, self.activation_call)}
