"""Convolution layers (channels_last): Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D.

Keras 3's arguments, defaults, configs and weight layouts; the maths is in
``kernels/kinds/conv.py``. Inputs are ``(steps, channels)`` for 1-D layers
and ``(rows, cols, channels)`` for 2-D ones; ``data_format="channels_first"``
is refused.
"""
import numbers

from .. import activations, initializers, regularizers
from ..kernels.kinds import conv as K
from ..kernels.kinds.parallel import header
from .base import Layer, Op


def check_data_format(data_format, what):
    """Accepts None and "channels_last"; refuses "channels_first" with a clear message."""
    if data_format in (None, "channels_last"):
        return "channels_last"
    if data_format == "channels_first":
        raise ValueError(f"{what}: data_format='channels_first' is not supported; fastnn keeps feature maps "
                         "channels_last (samples, rows, cols, channels), Keras's default. Transpose the data "
                         "once, e.g. x.transpose(0, 2, 3, 1), and leave data_format unset")
    raise ValueError(f"{what}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}")


def int_tuple(value, rank, name, what, minimum=1):
    """``value`` (an int or a sequence of ``rank`` ints) as a tuple of ``rank`` ints >= ``minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value),) * rank
    try:
        value = tuple(value)
    except TypeError:
        value = None
    if value is None or len(value) != rank or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or
                                                  v < minimum for v in value):
        raise ValueError(f"{what}: {name} must be an integer or a tuple of {rank} integers >= {minimum}, "
                         f"got {value!r}")
    return tuple(int(v) for v in value)


def check_padding(padding, what, allowed=("valid", "same")):
    p = padding.lower() if isinstance(padding, str) else padding
    if p not in allowed:
        raise ValueError(f"{what}: padding must be one of {list(allowed)}, got {padding!r}")
    return p


def output_size(size, kernel, stride, dilation, padding):
    """(output length, padding before) along one axis, as TensorFlow computes them."""
    span = dilation * (kernel - 1) + 1
    if padding == "valid":
        return (size - span) // stride + 1 if size >= span else 0, 0
    if padding == "causal":
        return (size - 1) // stride + 1, span - 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2


def spatial_shape(layer, input_shape, rank):
    """(H, W, C) of a per-sample input of a ``rank``-D layer (1-D: H = 1)."""
    if isinstance(input_shape, list) or len(input_shape) != rank + 1:
        dims = "(steps, channels)" if rank == 1 else "(rows, cols, channels)"
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r} needs inputs of shape (batch, {dims[1:]}, "
                         f"got {input_shape if isinstance(input_shape, list) else (None, *input_shape)}")
    return (1, *input_shape) if rank == 1 else tuple(input_shape)


class _BaseConv(Layer):
    """What Conv1D/Conv2D/DepthwiseConv2D/SeparableConv2D share: the window's
    geometry (kernel_size, strides, padding, dilation_rate) and activation."""
    rank = 2
    paddings = ("valid", "same")

    def _geometry_args(self, kernel_size, strides, padding, data_format, dilation_rate):
        what = f"{type(self).__name__}"
        self.data_format = check_data_format(data_format, what)
        self.kernel_size = int_tuple(kernel_size, self.rank, "kernel_size", what)
        self.strides = int_tuple(strides, self.rank, "strides", what)
        self.padding = check_padding(padding, what, self.paddings)
        self.dilation_rate = int_tuple(dilation_rate, self.rank, "dilation_rate", what)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{what}: strides > 1 not supported in conjunction with dilation_rate > 1, got "
                             f"strides={self.strides} and dilation_rate={self.dilation_rate}")

    def _window(self, input_shape):
        """(H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL) for a per-sample input shape."""
        H, W, C = spatial_shape(self, input_shape, self.rank)
        pad = lambda s: tuple(s) if self.rank == 2 else (1, *s)   # noqa: E731
        (KH, KW), (SH, SW), (DH, DW) = pad(self.kernel_size), pad(self.strides), pad(self.dilation_rate)
        OH, PT = output_size(H, KH, SH, DH, "valid" if self.rank == 1 else self.padding)
        OW, PL = output_size(W, KW, SW, DW, self.padding)
        if OH <= 0 or OW <= 0:
            raise ValueError(f"{type(self).__name__} layer {self.name!r}: input of shape {(None, *input_shape)} is "
                             f"smaller than its dilated kernel {self.kernel_size} (dilation {self.dilation_rate}) "
                             f"with padding='{self.padding}'; the output would be empty")
        return H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL

    def _out_shape(self, input_shape, channels):
        H, W, C, OH, OW = self._window(input_shape)[:5]
        return (OW, channels) if self.rank == 1 else (OH, OW, channels)

    def _geometry_config(self):
        return {"kernel_size": list(self.kernel_size), "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate)}


class _Conv(_BaseConv):
    """Conv1D / Conv2D: ``activation(conv(x, kernel) + bias)``; kernel
    ``(*kernel_size, in_channels, filters)``, bias ``(filters,)``."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, numbers.Integral) or filters <= 0:
            raise ValueError(f"{what}: filters must be a positive integer, got {filters!r}")
        if groups != 1:
            raise ValueError(f"{what}: groups={groups!r} is not supported (only groups=1)")
        if activity_regularizer is not None:
            raise ValueError(f"{what}: activity_regularizer is not supported; use kernel_regularizer or "
                             "bias_regularizer")
        if kernel_constraint is not None or bias_constraint is not None:
            raise ValueError(f"{what}: kernel_constraint / bias_constraint are not supported")
        self.filters = int(filters)
        self._geometry_args(kernel_size, strides, padding, data_format, dilation_rate)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = self.bias = None

    def compute_output_shape(self, input_shape):
        return self._out_shape(input_shape, self.filters)

    def build(self, input_shape):
        C = input_shape[-1]
        self.kernel = self.add_weight("kernel", (*self.kernel_size, C, self.filters), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def op(self, input_shape):
        H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = self._window(input_shape)
        act, F = self.activation.code, self.filters
        z_in = K.in_place(act)
        cols = OH * OW * KH * KW * C
        direct = KH == KW == SH == SW == 1 and PT == PL == 0
        group = max(1, min(32, K.TMP_TARGET // cols))
        geometry = K.geometry(H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, F, F, act, z_in, 0, OH * OW * F,
                              group, C < K.TAPS_BELOW_C)
        return Op(K.CONV, act, self.kernel, self.bias, consts=(1.0, 0.0, 1.0, 1.0),
                  ints=header(1 if direct else group * cols) + geometry,
                  scratch=0 if z_in else OH * OW * F)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self._geometry_config(), "groups": 1,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}


class Conv2D(_Conv):
    """2-D convolution over ``(rows, cols, channels)`` maps."""
    rank = 2


class Conv1D(_Conv):
    """1-D convolution over ``(steps, channels)`` sequences; padding also "causal"
    (zeros before the sequence only, so output step i sees steps <= i)."""
    rank = 1
    paddings = ("valid", "same", "causal")

    def _window(self, input_shape):
        if self.padding != "causal":
            return super()._window(input_shape)
        H, W, C = spatial_shape(self, input_shape, 1)
        (KW,), (SW,), (DW,) = self.kernel_size, self.strides, self.dilation_rate
        OW, PL = output_size(W, KW, SW, DW, "causal")
        return 1, W, C, 1, OW, 1, KW, 1, SW, 1, DW, 0, PL


class DepthwiseConv2D(_BaseConv):
    """Each input channel convolved with its own ``depth_multiplier`` kernels:
    output channel ``c * depth_multiplier + m``; kernel ``(*kernel_size, channels,
    depth_multiplier)``, bias ``(channels * depth_multiplier,)``."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, numbers.Integral) or \
                depth_multiplier <= 0:
            raise ValueError(f"{what}: depth_multiplier must be a positive integer, got {depth_multiplier!r}")
        if activity_regularizer is not None:
            raise ValueError(f"{what}: activity_regularizer is not supported")
        if depthwise_constraint is not None or bias_constraint is not None:
            raise ValueError(f"{what}: depthwise_constraint / bias_constraint are not supported")
        self.depth_multiplier = int(depth_multiplier)
        self._geometry_args(kernel_size, strides, padding, data_format, dilation_rate)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = self.bias = None

    def compute_output_shape(self, input_shape):
        return self._out_shape(input_shape, spatial_shape(self, input_shape, 2)[2] * self.depth_multiplier)

    def build(self, input_shape):
        C, M = input_shape[-1], self.depth_multiplier
        self.kernel = self.add_weight("kernel", (*self.kernel_size, C, M), self.depthwise_initializer,
                                      regularizer=self.depthwise_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (C * M,), self.bias_initializer, regularizer=self.bias_regularizer)

    def op(self, input_shape):
        H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = self._window(input_shape)
        act, M = self.activation.code, self.depth_multiplier
        z_in = K.in_place(act)
        geometry = K.geometry(H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, M, C * M, act, z_in, 0,
                              OH * OW * C * M)
        return Op(K.DEPTHWISE, act, self.kernel, self.bias, consts=(1.0, 0.0, 1.0, 1.0),
                  ints=header(1) + geometry, scratch=0 if z_in else OH * OW * C * M)

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier, **self._geometry_config(),
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": None, "depthwise_constraint": None, "bias_constraint": None}


class SeparableConv2D(_BaseConv):
    """A depthwise convolution (no bias) followed by a 1x1 convolution to
    ``filters`` channels, its bias and the activation. Weights, in Keras's
    order: depthwise_kernel ``(*kernel_size, channels, depth_multiplier)``,
    pointwise_kernel ``(1, 1, channels * depth_multiplier, filters)``, bias."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        for name, v in (("filters", filters), ("depth_multiplier", depth_multiplier)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"{what}: {name} must be a positive integer, got {v!r}")
        if activity_regularizer is not None:
            raise ValueError(f"{what}: activity_regularizer is not supported")
        if any(c is not None for c in (depthwise_constraint, pointwise_constraint, bias_constraint)):
            raise ValueError(f"{what}: weight constraints are not supported")
        self.filters, self.depth_multiplier = int(filters), int(depth_multiplier)
        self._geometry_args(kernel_size, strides, padding, data_format, dilation_rate)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.depthwise_kernel = self.pointwise_kernel = self.bias = None

    def compute_output_shape(self, input_shape):
        return self._out_shape(input_shape, self.filters)

    def build(self, input_shape):
        C, M = input_shape[-1], self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (*self.kernel_size, C, M),
                                                self.depthwise_initializer, regularizer=self.depthwise_regularizer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, C * M, self.filters),
                                                self.pointwise_initializer, regularizer=self.pointwise_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def op(self, input_shape):
        H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL = self._window(input_shape)
        act, M, F = self.activation.code, self.depth_multiplier, self.filters
        z_in = K.in_place(act)
        depthwise = OH * OW * C * M
        scratch = depthwise + (0 if z_in else OH * OW * F)
        geometry = K.geometry(H, W, C, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, M, F, act, z_in, depthwise, scratch)
        # the pointwise kernel is read at S_OFF
        return Op(K.SEPARABLE, act, self.depthwise_kernel, self.bias, consts=(1.0, 0.0, 1.0, 1.0),
                  state=(self.pointwise_kernel,), ints=header(1) + geometry, scratch=scratch)

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier, "filters": self.filters,
                **self._geometry_config(), "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": None, "depthwise_constraint": None, "pointwise_constraint": None,
                "bias_constraint": None}
