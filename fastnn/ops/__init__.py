"""``keras.ops``: a core of Keras 3's tensor operations, with its names and arguments.

On NumPy arrays (and Python numbers, lists, ``Variable``s) each function
computes at once and returns a NumPy array, with Keras's dtype rules:
float32 for float results from float32 or integer inputs (Python floats
never widen an array), float64 kept where an input is float64, integer
results for integer arithmetic, bool for comparisons.

On symbolic tensors (``keras.Input``, a layer's output, inside a traced
``call`` or loss) each becomes an op of the model's compiled program, with a
compiled forward and backward pass (``fastnn.ops.graph``); ``ops.matmul(x,
self.w)`` with a layer's weight reads the weight from the model's parameter
buffer and trains it. Axes count the batch axis as axis 0, as in Keras; in a
model an op may not mix samples (no reduction or reshape over axis 0).
The ops with a compiled form are listed in ``SYMBOLIC``; the others raise a
clear error on symbolic tensors.
"""
import builtins as _py
import math

import numpy as np

from ..layers.node import is_symbolic
from . import graph

_F32 = np.float32


# -- dtypes ---------------------------------------------------------------
def _is_weak(x):
    """Python numbers take the dtype of the arrays they meet (Keras's weak types)."""
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def convert_to_tensor(x, dtype=None, sparse=None):
    """``x`` as a NumPy array: Python floats (and float lists) become float32,
    Python ints int32, bools bool; NumPy arrays keep their dtype; ``dtype``
    converts."""
    if dtype is not None:
        return np.asarray(x, dtype=standardize_dtype(dtype))
    if isinstance(x, np.ndarray):
        return x
    arr = np.asarray(x)
    if arr.dtype == np.float64 and not isinstance(x, np.generic):
        return arr.astype(_F32)
    if arr.dtype == np.int64 and not isinstance(x, np.generic):
        return arr.astype(np.int32)
    return arr


def standardize_dtype(dtype):
    """A Keras dtype name (``"float32"``, ``"int32"``, ``"bool"``...) or NumPy dtype as a NumPy dtype."""
    if dtype is None:
        return np.dtype(_F32)
    if dtype in ("float", float):
        return np.dtype(_F32)
    if dtype in ("int", int):
        return np.dtype(np.int32)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise ValueError(f"Unknown dtype {dtype!r}") from None


def _dtype(*xs):
    """Keras's result dtype of arithmetic on ``xs``."""
    arrays = [np.asarray(x).dtype for x in xs if not _is_weak(x)]
    weak = [x for x in xs if _is_weak(x)]
    floats = [d for d in arrays if d.kind == "f"]
    if floats:
        return np.dtype(np.float64) if _py.any(d == np.float64 for d in floats) else np.dtype(_F32)
    if _py.any(isinstance(x, float) for x in weak):
        return np.dtype(_F32)
    ints = [d for d in arrays if d.kind in "iu"]
    if ints:
        return np.result_type(*ints)
    if arrays:      # bools only
        return np.dtype(np.int32) if _py.any(not isinstance(x, bool) for x in weak) else np.dtype(bool)
    return np.dtype(np.int32) if _py.all(isinstance(x, int) and not isinstance(x, bool) for x in weak) \
        else np.dtype(bool)


def _float_dtype(*xs):
    """The dtype of a float result (exp, sqrt, divide...): float64 only from float64 inputs."""
    d = _dtype(*xs)
    return d if d.kind == "f" else np.dtype(_F32)


def _arr(x, dtype):
    return np.asarray(x, dtype=dtype)


def _sym(*xs):
    return _py.any(is_symbolic(x) for x in xs)


# -- arithmetic and comparison -------------------------------------------
def _binary(name, fn, float_result=False):
    def op(x1, x2):
        if _sym(x1, x2):
            return graph.binary(name, x1, x2)
        d = _float_dtype(x1, x2) if float_result else _dtype(x1, x2)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.asarray(fn(_arr(x1, d), _arr(x2, d))).astype(d)
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` with broadcasting (Keras's ``keras.ops.{name}``)."
    return op


add = _binary("add", np.add)
subtract = _binary("subtract", np.subtract)
multiply = _binary("multiply", np.multiply)
divide = _binary("divide", np.divide, float_result=True)
true_divide = _binary("true_divide", np.divide, float_result=True)
floor_divide = _binary("floor_divide", np.floor_divide)
mod = _binary("mod", np.mod)
maximum = _binary("maximum", np.maximum)
minimum = _binary("minimum", np.minimum)


def power(x1, x2):
    """``x1 ** x2`` elementwise with broadcasting."""
    if _sym(x1, x2):
        return graph.binary("power", x1, x2)
    d = _dtype(x1, x2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.power(_arr(x1, d), _arr(x2, d)).astype(d)


def _compare(name, fn):
    def op(x1, x2):
        if _sym(x1, x2):
            return graph.binary(name, x1, x2)
        d = _dtype(x1, x2)
        return np.asarray(fn(_arr(x1, d), _arr(x2, d)))
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` with broadcasting; a bool array."
    return op


greater = _compare("greater", np.greater)
greater_equal = _compare("greater_equal", np.greater_equal)
less = _compare("less", np.less)
less_equal = _compare("less_equal", np.less_equal)
equal = _compare("equal", np.equal)
not_equal = _compare("not_equal", np.not_equal)


def logical_and(x1, x2):
    if _sym(x1, x2):
        return graph.binary("logical_and", x1, x2)
    return np.logical_and(x1, x2)


def logical_or(x1, x2):
    if _sym(x1, x2):
        return graph.binary("logical_or", x1, x2)
    return np.logical_or(x1, x2)


def logical_not(x):
    if _sym(x):
        return graph.unary("logical_not", x)
    return np.logical_not(x)


def where(condition, x1=None, x2=None):
    """``x1`` where ``condition`` holds, else ``x2`` (broadcast together)."""
    if x1 is None or x2 is None:
        raise ValueError("ops.where needs x1 and x2 (the one-argument form returns indices, which fastnn does "
                         "not support)")
    if _sym(condition, x1, x2):
        return graph.where(condition, x1, x2)
    d = _dtype(x1, x2)
    return np.where(np.asarray(condition).astype(bool), _arr(x1, d), _arr(x2, d)).astype(d)


def _unary(name, fn, float_result=True):
    def op(x):
        if _sym(x):
            return graph.unary(name, x)
        d = _float_dtype(x) if float_result else _dtype(x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.asarray(fn(_arr(x, d))).astype(d)
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` (Keras's ``keras.ops.{name}``)."
    return op


negative = _unary("negative", np.negative, float_result=False)
square = _unary("square", np.square, float_result=False)
abs = _unary("abs", np.abs, float_result=False)      # noqa: A001  (Keras's name)
absolute = abs
sign = _unary("sign", np.sign, float_result=False)
sqrt = _unary("sqrt", np.sqrt)
exp = _unary("exp", np.exp)
log = _unary("log", np.log)
log1p = _unary("log1p", np.log1p)
expm1 = _unary("expm1", np.expm1)
sin = _unary("sin", np.sin)
cos = _unary("cos", np.cos)
floor = _unary("floor", np.floor)
ceil = _unary("ceil", np.ceil)


def clip(x, x_min, x_max):
    """``x`` limited to [x_min, x_max] (numbers)."""
    if _sym(x):
        return graph.unary("clip", x, float(x_min), float(x_max))
    d = _dtype(x, x_min, x_max) if not isinstance(x, np.ndarray) else np.asarray(x).dtype
    d = d if d != np.bool_ else np.dtype(np.int32)
    return np.clip(_arr(x, d), x_min, x_max).astype(d)


# -- activations (float results; see fastnn.activations for the formulas' sources) --
def _sigmoid_np(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def _gelu_np(x, approximate):
    if approximate:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1 + erf(x / np.sqrt(2.0)))


def _elu_np(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _float_unary(fn):
    """``fn`` on ``x`` in float64, the result in Keras's float dtype for ``x``."""
    def compute(x):
        d = _float_dtype(x)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(fn(np.asarray(x, dtype=np.float64))).astype(d)
    return compute


def relu(x):
    """max(x, 0)."""
    return graph.unary("relu", x) if _sym(x) else _float_unary(lambda v: np.maximum(v, 0))(x)


def relu6(x):
    """min(max(x, 0), 6)."""
    return graph.unary("clip", x, 0.0, 6.0) if _sym(x) else _float_unary(lambda v: np.clip(v, 0, 6))(x)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return graph.unary("sigmoid", x) if _sym(x) else _float_unary(_sigmoid_np)(x)


def tanh(x):
    return graph.unary("tanh", x) if _sym(x) else _float_unary(np.tanh)(x)


def elu(x, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    if _sym(x):
        return graph.unary("elu", x, float(alpha))
    return _float_unary(lambda v: _elu_np(v, alpha))(x)


def selu(x):
    """scale * elu(x, alpha) with Keras's scale 1.0507 and alpha 1.6733."""
    if _sym(x):
        return graph.unary("selu", x)
    return _float_unary(lambda v: _SELU_SCALE * _elu_np(v, _SELU_ALPHA))(x)


def gelu(x, approximate=True):
    """Gaussian error linear unit; ``approximate`` (Keras's default here: True) uses the tanh form."""
    if _sym(x):
        return graph.unary("gelu_tanh" if approximate else "gelu", x)
    return _float_unary(lambda v: _gelu_np(v, approximate))(x)


def softplus(x):
    """log(1 + exp(x))."""
    if _sym(x):
        return graph.unary("softplus", x)
    return _float_unary(lambda v: np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v))))(x)


def silu(x):
    """x * sigmoid(x)."""
    return graph.unary("silu", x) if _sym(x) else _float_unary(lambda v: v * _sigmoid_np(v))(x)


swish = silu


def leaky_relu(x, negative_slope=0.2):
    """x if x > 0 else negative_slope * x."""
    if _sym(x):
        return graph.unary("leaky_relu", x, float(negative_slope))
    return _float_unary(lambda v: np.where(v > 0, v, negative_slope * v))(x)


def hard_sigmoid(x):
    """clip(x / 6 + 0.5, 0, 1) (Keras 3)."""
    if _sym(x):
        return graph.unary("hard_sigmoid", x)
    return _float_unary(lambda v: np.clip(v / 6 + 0.5, 0, 1))(x)


def softsign(x):
    """x / (1 + |x|)."""
    return graph.unary("softsign", x) if _sym(x) else _float_unary(lambda v: v / (1 + np.abs(v)))(x)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis`` (computed from x - max for range)."""
    if _sym(x):
        return graph.softmax(x, axis, log=False)
    v = np.asarray(x, dtype=np.float64)
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(_float_dtype(x))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``."""
    if _sym(x):
        return graph.softmax(x, axis, log=True)
    v = np.asarray(x, dtype=np.float64)
    m = v.max(axis=axis, keepdims=True)
    return (v - m - np.log(np.exp(v - m).sum(axis=axis, keepdims=True))).astype(_float_dtype(x))


# -- reductions -----------------------------------------------------------
def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def sum(x, axis=None, keepdims=False):      # noqa: A001
    """Sum over ``axis`` (None: all); bools and small ints sum as int32."""
    if _sym(x):
        return graph.reduce("sum", x, axis, keepdims)
    a = convert_to_tensor(x)
    d = np.dtype(np.int32) if a.dtype == bool else a.dtype
    return np.asarray(np.sum(a, axis=_axis(axis), keepdims=keepdims, dtype=d))


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all); float32 for integer inputs."""
    if _sym(x):
        return graph.reduce("mean", x, axis, keepdims)
    a = convert_to_tensor(x)
    d = _float_dtype(a)
    return np.asarray(np.mean(a.astype(np.float64 if d == np.float64 else _F32), axis=_axis(axis),
                              keepdims=keepdims)).astype(d)


def max(x, axis=None, keepdims=False, initial=None):     # noqa: A001
    """Largest value over ``axis`` (None: all)."""
    if _sym(x):
        return graph.reduce("max", x, axis, keepdims)
    return np.asarray(np.max(convert_to_tensor(x), axis=_axis(axis), keepdims=keepdims,
                             **({} if initial is None else {"initial": initial})))


def min(x, axis=None, keepdims=False, initial=None):     # noqa: A001
    """Smallest value over ``axis`` (None: all)."""
    if _sym(x):
        return graph.reduce("min", x, axis, keepdims)
    return np.asarray(np.min(convert_to_tensor(x), axis=_axis(axis), keepdims=keepdims,
                             **({} if initial is None else {"initial": initial})))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, computed from x - max."""
    if _sym(x):
        return graph.reduce("logsumexp", x, axis, keepdims)
    a = convert_to_tensor(x)
    v = a.astype(np.float64)
    m = np.max(v, axis=_axis(axis), keepdims=True)
    out = np.log(np.sum(np.exp(v - m), axis=_axis(axis), keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=_axis(axis)) if axis is not None else out.reshape(())
    return np.asarray(out).astype(_float_dtype(a))


def argmax(x, axis=None, keepdims=False):
    """Index (int32) of the largest value along ``axis`` (None: of the flattened array); the first on ties."""
    if _sym(x):
        return graph.reduce("argmax", x, axis, keepdims)
    return np.asarray(np.argmax(convert_to_tensor(x), axis=axis, keepdims=keepdims)).astype(np.int32)


def argmin(x, axis=None, keepdims=False):
    """Index (int32) of the smallest value along ``axis``; the first on ties."""
    if _sym(x):
        return graph.reduce("argmin", x, axis, keepdims)
    return np.asarray(np.argmin(convert_to_tensor(x), axis=axis, keepdims=keepdims)).astype(np.int32)


def prod(x, axis=None, keepdims=False):
    """Product over ``axis`` (None: all)."""
    if _sym(x):
        return graph.reduce("prod", x, axis, keepdims)
    a = convert_to_tensor(x)
    return np.asarray(np.prod(a, axis=_axis(axis), keepdims=keepdims))


def var(x, axis=None, keepdims=False):
    """Variance over ``axis`` (None: all): the mean squared deviation from the mean (biased, as Keras)."""
    if _sym(x):
        return graph.moments("var", x, axis, keepdims)
    a = convert_to_tensor(x)
    return np.asarray(np.var(a.astype(np.float64), axis=_axis(axis), keepdims=keepdims)).astype(_float_dtype(a))


def std(x, axis=None, keepdims=False):
    """Standard deviation over ``axis`` (None: all): the square root of ``var``."""
    if _sym(x):
        return graph.moments("std", x, axis, keepdims)
    a = convert_to_tensor(x)
    return np.asarray(np.std(a.astype(np.float64), axis=_axis(axis), keepdims=keepdims)).astype(_float_dtype(a))


def any(x, axis=None, keepdims=False):      # noqa: A001
    """Whether any value over ``axis`` (None: all) is non-zero (bool)."""
    if _sym(x):
        return graph.any_all("any", x, axis, keepdims)
    return np.asarray(np.any(convert_to_tensor(x), axis=_axis(axis), keepdims=keepdims))


def all(x, axis=None, keepdims=False):      # noqa: A001
    """Whether every value over ``axis`` (None: all) is non-zero (bool)."""
    if _sym(x):
        return graph.any_all("all", x, axis, keepdims)
    return np.asarray(np.all(convert_to_tensor(x), axis=_axis(axis), keepdims=keepdims))


def cumsum(x, axis=None):
    """Running sums along ``axis`` (None: of the flattened array)."""
    if _sym(x):
        return graph.cumsum(x, axis)
    a = convert_to_tensor(x)
    return np.cumsum(a, axis=axis).astype(a.dtype if a.dtype != bool else np.int32)


# -- linear algebra and shapes ---------------------------------------------
def matmul(x1, x2):
    """Matrix product (``@``) with NumPy's rules for vectors and stacks of matrices."""
    if _sym(x1, x2):
        return graph.matmul(x1, x2)
    d = _dtype(x1, x2)
    return np.asarray(np.matmul(_arr(x1, d), _arr(x2, d))).astype(d)


def dot(x1, x2):
    """NumPy's ``dot``: matmul for 1-D and 2-D arrays. In a model: a tensor dot a
    weight or constant matrix/vector (which is matmul there)."""
    if _sym(x1, x2):
        if is_symbolic(x2):
            raise ValueError("keras.ops.dot on symbolic tensors: dot of two symbolic tensors contracts across "
                             "their batch axes; use ops.matmul on (None, p, n) @ (None, n, m), or "
                             "ops.sum(a * b, axis=-1)")
        return graph.matmul(x1, x2)
    d = _dtype(x1, x2)
    return np.asarray(np.dot(_arr(x1, d), _arr(x2, d))).astype(d)


def reshape(x, newshape):
    """``x`` with shape ``newshape`` (one entry may be -1)."""
    if _sym(x):
        return graph.reshape(x, newshape)
    return np.reshape(convert_to_tensor(x), newshape)


def transpose(x, axes=None):
    """Axes permuted by ``axes`` (default: reversed)."""
    if _sym(x):
        return graph.transpose(x, axes)
    return np.transpose(convert_to_tensor(x), axes)


def expand_dims(x, axis):
    if _sym(x):
        return graph.expand_dims(x, axis)
    return np.expand_dims(convert_to_tensor(x), axis)


def squeeze(x, axis=None):
    """``x`` without the size-1 axes (``axis``: only those)."""
    if _sym(x):
        return graph.squeeze(x, axis)
    return np.squeeze(convert_to_tensor(x), axis=_axis(axis))


def concatenate(xs, axis=0):
    """The arrays joined along ``axis`` (default 0, as Keras)."""
    if _sym(*xs):
        return graph.concatenate(list(xs), axis)
    d = _dtype(*xs)
    return np.concatenate([_arr(x, d) for x in xs], axis=axis)


def stack(x, axis=0):
    """The arrays stacked along a new ``axis``."""
    if _sym(*x):
        return graph.concatenate([graph.expand_dims(t, axis) for t in x], axis)
    d = _dtype(*x)
    return np.stack([_arr(v, d) for v in x], axis=axis)


def tile(x, repeats):
    """``x`` repeated ``repeats`` times along each axis (NumPy's ``tile``)."""
    if _sym(x):
        return graph.tile(x, repeats)
    return np.tile(convert_to_tensor(x), repeats)


def repeat(x, repeats, axis=None):
    """Each value repeated ``repeats`` times (an int, or one count per value) along ``axis`` (None: flattened)."""
    if _sym(x):
        return graph.repeat(x, repeats, axis)
    return np.repeat(convert_to_tensor(x), repeats, axis=axis)


def flip(x, axis=None):
    """``x`` with the order of values along ``axis`` (None: every axis) reversed."""
    if _sym(x):
        return graph.flip(x, axis)
    return np.flip(convert_to_tensor(x), axis=axis)


def shape(x):
    """The shape as a tuple (None for the batch axis of a symbolic tensor)."""
    if _sym(x):
        return tuple(x.shape)
    return tuple(int(s) for s in np.shape(x))


# -- creation and dtypes -----------------------------------------------------
def cast(x, dtype):
    """``x`` converted to ``dtype``; in a model a cast to an integer truncates toward zero."""
    if _sym(x):
        return graph.cast(x, standardize_dtype(dtype))
    return np.asarray(convert_to_tensor(x)).astype(standardize_dtype(dtype))


def one_hot(x, num_classes, axis=-1, dtype=None):
    """Integer labels as one-hot rows of ``num_classes`` (a label outside [0, num_classes): all zeros)."""
    if _sym(x):
        return graph.one_hot(x, num_classes, axis)
    labels = np.asarray(x)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"ops.one_hot needs integer labels, got dtype {labels.dtype}")
    eye_rows = (labels[..., None] == np.arange(num_classes)).astype(standardize_dtype(dtype))
    return np.moveaxis(eye_rows, -1, axis) if axis != -1 else eye_rows


def ones(shape, dtype=None):
    return np.ones(shape, dtype=standardize_dtype(dtype))


def zeros(shape, dtype=None):
    return np.zeros(shape, dtype=standardize_dtype(dtype))


def full(shape, fill_value, dtype=None):
    return np.full(shape, fill_value, dtype=standardize_dtype(dtype) if dtype is not None else
                   _dtype(fill_value))


def ones_like(x, dtype=None):
    if _sym(x):
        return graph.fill_like(x, 1.0)
    a = convert_to_tensor(x)
    return np.ones(a.shape, dtype=a.dtype if dtype is None else standardize_dtype(dtype))


def zeros_like(x, dtype=None):
    if _sym(x):
        return graph.fill_like(x, 0.0)
    a = convert_to_tensor(x)
    return np.zeros(a.shape, dtype=a.dtype if dtype is None else standardize_dtype(dtype))


def array(x, dtype=None):
    return convert_to_tensor(x, dtype)


def convert_to_numpy(x):
    """A NumPy array of ``x`` (a symbolic tensor has no values: TypeError)."""
    if _sym(x):
        raise TypeError("convert_to_numpy: a symbolic tensor has no values; it stands for the data a model "
                        "will be given")
    return np.array(x)


def arange(start, stop=None, step=1, dtype=None):
    if dtype is None:
        dtype = _dtype(start, *(() if stop is None else (stop,)), step)
    return np.arange(start, stop, step, dtype=standardize_dtype(dtype)) if stop is not None else \
        np.arange(start, dtype=standardize_dtype(dtype))


def eye(N, M=None, k=0, dtype=None):
    return np.eye(N, M, k, dtype=standardize_dtype(dtype))


def linspace(start, stop, num=50, endpoint=True, dtype=None):
    return np.linspace(start, stop, num, endpoint=endpoint).astype(standardize_dtype(dtype))


def stop_gradient(x):
    """``x``, through which no gradient flows back (in a model: its ops and weights before it do not train
    through this path)."""
    if _sym(x):
        return graph.unary("stop_gradient", x)
    return convert_to_tensor(x)


# The ops that become compiled graph ops on symbolic tensors.
SYMBOLIC = frozenset((
    "add", "subtract", "multiply", "divide", "true_divide", "power", "maximum", "minimum", "greater",
    "greater_equal", "less", "less_equal", "equal", "not_equal", "logical_and", "logical_or", "logical_not",
    "where", "negative", "square", "abs", "absolute", "sign", "sqrt", "exp", "log", "log1p", "expm1", "clip",
    "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "gelu", "softplus", "silu", "swish", "leaky_relu",
    "hard_sigmoid", "softsign", "softmax", "log_softmax", "sum", "mean", "max", "min", "logsumexp", "argmax",
    "argmin", "matmul", "dot", "reshape", "transpose", "expand_dims", "squeeze", "concatenate", "stack", "cast",
    "ones_like", "zeros_like", "shape", "getitem", "prod", "var", "std", "any", "all", "cumsum", "tile", "repeat",
    "flip", "one_hot", "stop_gradient"))


def getitem(x, key):
    """``x[key]`` with basic indexing (ints, slices, None, Ellipsis)."""
    if _sym(x):
        return graph.getitem(x, key)
    return convert_to_tensor(x)[key]
