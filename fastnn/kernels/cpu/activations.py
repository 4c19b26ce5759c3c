"""Elementwise activations and their derivatives, selected by integer code.

The codes are the contract between ``fastnn.activations`` (names) and the
compiled loops; one generic kernel serves every activation, so adding a
model never compiles new code. Softmax is the one row-wise activation.

The parallel Dense blocks run ReLU and linear themselves and reach the
others through a pointer (``activation_function``): the generic kernel is
about 1 s of compile time that a model with ReLU, linear and softmax
layers alone never spends.
"""
import math

import numpy as np
from numba import njit, types

from .pointers import NO_WRAPPERS, function_pointer
from ..program import ACT, ACTIVATION, DENSE, KIND

LINEAR, RELU, SIGMOID, SOFTMAX, TANH, ELU, SELU, GELU, SWISH, LEAKY_RELU, SOFTPLUS, EXPONENTIAL = range(12)

_SELU_ALPHA = np.float32(1.6732632423543772)
_SELU_SCALE = np.float32(1.0507009873554805)
_LEAKY_SLOPE = np.float32(0.2)   # Keras 3 keras.activations.leaky_relu default
_INV_SQRT2 = np.float32(0.7071067811865476)
_INV_SQRT_2PI = np.float32(0.3989422804014327)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@njit(cache=True, inline="always")
def _sigmoid(z):
    # Two branches keep exp() from overflowing for large |z|.
    if z >= _ZERO:
        return _ONE / (_ONE + np.float32(math.exp(-z)))
    e = np.float32(math.exp(z))
    return e / (_ONE + e)


@njit(cache=True, inline="always")
def act_value(code, z):
    """Activation ``code`` applied to float32 scalar ``z`` (softmax excluded)."""
    if code == RELU:
        return z if z > _ZERO else _ZERO
    if code == SIGMOID:
        return _sigmoid(z)
    if code == TANH:
        return np.float32(math.tanh(z))
    if code == ELU:
        return z if z > _ZERO else np.float32(math.expm1(z))
    if code == SELU:
        return _SELU_SCALE * z if z > _ZERO else _SELU_SCALE * _SELU_ALPHA * np.float32(math.expm1(z))
    if code == GELU:
        return np.float32(0.5) * z * (_ONE + np.float32(math.erf(z * _INV_SQRT2)))
    if code == SWISH:
        return z * _sigmoid(z)
    if code == LEAKY_RELU:
        return z if z > _ZERO else _LEAKY_SLOPE * z
    if code == SOFTPLUS:
        # log(1 + e^z) without overflow: max(z, 0) + log1p(e^-|z|)
        return max(z, _ZERO) + np.float32(math.log1p(math.exp(-abs(z))))
    if code == EXPONENTIAL:
        return np.float32(math.exp(z))
    return z


@njit(cache=True, inline="always")
def act_derivative(code, z, a):
    """d act(z) / dz given pre-activation ``z`` and output ``a`` (softmax excluded)."""
    if code == RELU:
        return _ONE if z > _ZERO else _ZERO
    if code == SIGMOID:
        return a * (_ONE - a)
    if code == TANH:
        return _ONE - a * a
    if code == ELU:
        return _ONE if z > _ZERO else a + _ONE
    if code == SELU:
        return _SELU_SCALE if z > _ZERO else a + _SELU_SCALE * _SELU_ALPHA
    if code == GELU:
        cdf = np.float32(0.5) * (_ONE + np.float32(math.erf(z * _INV_SQRT2)))
        return cdf + z * _INV_SQRT_2PI * np.float32(math.exp(np.float32(-0.5) * z * z))
    if code == SWISH:
        s = _sigmoid(z)
        return s + z * s * (_ONE - s)
    if code == LEAKY_RELU:
        return _ONE if z > _ZERO else _LEAKY_SLOPE
    if code == SOFTPLUS:
        return _sigmoid(z)
    if code == EXPONENTIAL:
        return a
    return _ONE


@njit(cache=True, inline="always")
def relu_forward(z, a):
    """a = max(z, 0) over equal-length 1-D views: branch-free, so it vectorises."""
    for i in range(z.shape[0]):
        a[i] = max(z[i], _ZERO)


@njit(cache=True, inline="always")
def relu_backward(z, ga, gz):
    """gz = ga where z > 0, else 0."""
    for i in range(z.shape[0]):
        gz[i] = ga[i] if z[i] > _ZERO else _ZERO


@njit(cache=True, error_model="numpy", **NO_WRAPPERS)
def act_forward(code, z, a):
    """a = act(z) elementwise over equal-length 1-D views (softmax excluded).

    ReLU gets its own branch-free loop, which vectorises; the others call
    exp/erf/tanh, which do not vectorise here anyway, so they share one
    loop and the compile stays short."""
    if code == RELU:
        relu_forward(z, a)
    elif code == LINEAR:
        for i in range(z.shape[0]):
            a[i] = z[i]
    else:
        for i in range(z.shape[0]):
            a[i] = act_value(code, z[i])


@njit(cache=True, error_model="numpy", **NO_WRAPPERS)
def act_backward(code, z, a, ga, gz):
    """gz = ga * act'(z) over equal-length 1-D views (softmax excluded)."""
    if code == RELU:
        relu_backward(z, ga, gz)
    elif code == LINEAR:
        for i in range(z.shape[0]):
            gz[i] = ga[i]
    else:
        for i in range(z.shape[0]):
            gz[i] = ga[i] * act_derivative(code, z[i], a[i])


@njit(cache=True, inline="always")
def softmax_rows(z, z_off, a, a_off, rows, width):
    """Row-wise softmax of the ``rows x width`` block at ``z[z_off:]`` into ``a[a_off:]``."""
    for r in range(rows):
        zi = z_off + r * width
        ai = a_off + r * width
        m = z[zi]
        for j in range(1, width):
            m = max(m, z[zi + j])
        s = np.float32(0.0)
        for j in range(width):
            e = np.float32(math.exp(z[zi + j] - m))
            a[ai + j] = e
            s += e
        inv = _ONE / s
        for j in range(width):
            a[ai + j] *= inv


@njit(cache=True, inline="always")
def softmax_rows_backward(a, ga, a_off, gz, z_off, rows, width):
    """gz = a * (ga - sum(ga * a)) per row, the softmax Jacobian-vector product.

    ``a`` (outputs) and ``ga`` (their gradient) are read at ``a_off``; the
    gradient with respect to the logits is written to ``gz[z_off:]``.
    """
    for r in range(rows):
        i = a_off + r * width
        o = z_off + r * width
        dot = np.float32(0.0)
        for j in range(width):
            dot += ga[i + j] * a[i + j]
        for j in range(width):
            gz[o + j] = a[i + j] * (ga[i + j] - dot)


_F1 = types.float32[::1]
ACTIVATION_SIG = types.void(types.int64, types.boolean, _F1, _F1, _F1, _F1)


@njit(cache=True, **NO_WRAPPERS)
def elementwise(code, backward, z, a, ga, gz):
    """``act_forward(code, z, a)``, or with ``backward`` ``act_backward(code, z, a, ga, gz)``."""
    if backward:
        act_backward(code, z, a, ga, gz)
    else:
        act_forward(code, z, a)


@njit(cache=True, **NO_WRAPPERS)
def no_elementwise(code, backward, z, a, ga, gz):
    """Stands in for ``elementwise`` when every Dense activation is ReLU,
    linear or softmax (never called)."""


def activation_function(prog):
    """The pointer the Dense blocks call for activations other than ReLU,
    linear and softmax: ``elementwise``, or ``no_elementwise`` when no Dense
    op of ``prog`` uses one. (Activation ops count too: their backward pass
    runs in the same parallel blocks.)"""
    codes = prog[(prog[:, KIND] == DENSE) | (prog[:, KIND] == ACTIVATION), ACT]
    simple = bool(np.all((codes == RELU) | (codes == LINEAR) | (codes == SOFTMAX)))
    return function_pointer(no_elementwise if simple else elementwise, ACTIVATION_SIG)
