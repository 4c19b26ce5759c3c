"""Merge layers: Concatenate, Add, Subtract, Multiply, Average, Maximum,
Minimum, and their function forms (``concatenate([a, b])``, ...).

They take a list of tensors; the elementwise ones need inputs of one shape.
Maths in ``kernels/kinds/merging.py``.
"""
import math

from ..kernels.kinds import merging as K
from .base import Layer, Op


class _Merge(Layer):
    """Base of the elementwise merges: ``mode`` is the kernel's merge code."""
    mode = None
    keras_build_config = True
    min_inputs = 2

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < self.min_inputs:
            raise ValueError(f"A {type(self).__name__} layer should be called on a list of at least "
                             f"{self.min_inputs} inputs, got {input_shape}")
        first = tuple(input_shape[0])
        for s in input_shape[1:]:
            if tuple(s) != first:
                raise ValueError(f"{type(self).__name__} layer {self.name!r} needs inputs of one shape, got "
                                 f"{[(None, *s) for s in input_shape]}")
        return first

    def op(self, input_shape):
        return Op(K.MERGE, ints=(self.mode,))


class Add(_Merge):
    """Sum of the inputs."""
    mode = K.ADD


class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` (exactly two inputs)."""
    mode = K.SUBTRACT

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) and len(input_shape) != 2:
            raise ValueError(f"A Subtract layer should be called on exactly 2 inputs, got {len(input_shape)}")
        return super().compute_output_shape(input_shape)


class Multiply(_Merge):
    """Elementwise product of the inputs."""
    mode = K.MULTIPLY


class Average(_Merge):
    """Mean of the inputs."""
    mode = K.AVERAGE


class Maximum(_Merge):
    """Elementwise maximum of the inputs."""
    mode = K.MAXIMUM


class Minimum(_Merge):
    """Elementwise minimum of the inputs."""
    mode = K.MINIMUM


class Concatenate(Layer):
    """The inputs joined along ``axis`` (default -1, the features); every
    other dimension must agree."""
    keras_build_config = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"Concatenate axis must be an integer, got {axis!r}")
        self.axis = axis

    def _axis(self, ndim):
        """The axis as an index into a per-sample shape of ``ndim`` dims (axis 0 is the batch)."""
        axis = self.axis if self.axis < 0 else self.axis - 1
        if not -ndim <= axis < ndim or self.axis == 0:
            raise ValueError(f"Concatenate layer {self.name!r}: axis={self.axis} is out of range for inputs of "
                             f"{ndim + 1} dimensions (the batch axis 0 cannot be joined)")
        return axis % ndim

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 1:
            raise ValueError(f"A Concatenate layer should be called on a list of inputs, got {input_shape}")
        ndim = len(input_shape[0])
        if any(len(s) != ndim for s in input_shape):
            raise ValueError(f"Concatenate layer {self.name!r} needs inputs of one rank, got "
                             f"{[(None, *s) for s in input_shape]}")
        axis = self._axis(ndim)
        for s in input_shape[1:]:
            if any(a != b for k, (a, b) in enumerate(zip(s, input_shape[0])) if k != axis):
                raise ValueError(f"A Concatenate layer requires inputs with matching shapes except for the "
                                 f"concatenation axis. Received: input_shape={[(None, *s) for s in input_shape]}")
        out = list(input_shape[0])
        out[axis] = sum(s[axis] for s in input_shape)
        return tuple(out)

    def op(self, input_shape):
        axis = self._axis(len(input_shape[0]))
        outer = math.prod(input_shape[0][:axis])
        return Op(K.CONCATENATE, ints=(outer, *(math.prod(s[axis:]) for s in input_shape)))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)
