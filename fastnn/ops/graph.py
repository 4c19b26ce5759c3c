"""``keras.ops`` on symbolic tensors: each call becomes a node of the model's graph.

A call records a ``Node`` whose layer is an ``OpLayer``: a hidden layer
(never in ``model.layers``) that asks the compiled program for one op of a
``kernels.kinds.tensor_ops`` kind, or for none where the output is the
input's values in another shape (reshape, expand_dims, squeeze, a cast to
float). Shapes are per sample: the batch axis is axis 0 of the Keras shape,
and an op may not mix samples.

Operands that are not symbolic become Parameter ops: a layer's ``Variable``
(read from, and trained in, the model's flat buffer: the variable must
belong to a layer the model holds) or a constant (a number or array, kept in
the program's constants). ``ops.matmul(x, w)`` with a 2-D weight or constant
reads it directly in one matrix product over the whole batch.
"""
import contextlib
import math

import numpy as np

from ..kernels.kinds import merging, tensor_ops as K
from ..layers.base import Layer, Op, Variable, unique_name
from ..layers.node import KerasTensor, Node, current_owner, is_symbolic

_UNARY = {"negative": K.NEG, "square": K.SQUARE, "sqrt": K.SQRT, "exp": K.EXP, "log": K.LOG, "abs": K.ABS,
          "absolute": K.ABS, "sign": K.SIGN, "relu": K.RELU, "sigmoid": K.SIGMOID, "tanh": K.TANH, "elu": K.ELU,
          "selu": K.SELU, "gelu": K.GELU, "gelu_tanh": K.GELU_TANH, "softplus": K.SOFTPLUS, "silu": K.SILU,
          "leaky_relu": K.LEAKY_RELU, "hard_sigmoid": K.HARD_SIGMOID, "softsign": K.SOFTSIGN, "clip": K.CLIP,
          "log1p": K.LOG1P, "expm1": K.EXPM1, "logical_not": K.NOT, "trunc": K.TRUNC, "nonzero": K.NONZERO,
          "fill": K.FILL, "stop_gradient": K.STOP_GRADIENT}
_BINARY = {"add": K.ADD, "subtract": K.SUBTRACT, "multiply": K.MULTIPLY, "divide": K.DIVIDE,
           "true_divide": K.DIVIDE, "power": K.POWER, "maximum": K.MAXIMUM, "minimum": K.MINIMUM,
           "greater": K.GREATER, "greater_equal": K.GREATER_EQUAL, "less": K.LESS, "less_equal": K.LESS_EQUAL,
           "equal": K.EQUAL, "not_equal": K.NOT_EQUAL, "logical_and": K.AND, "logical_or": K.OR}
_BOOL_RESULT = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "logical_and",
                "logical_or", "logical_not"}
_REDUCE = {"sum": K.R_SUM, "mean": K.R_MEAN, "max": K.R_MAX, "min": K.R_MIN, "logsumexp": K.R_LOGSUMEXP,
           "argmax": K.R_ARGMAX, "argmin": K.R_ARGMIN, "prod": K.R_PROD}


# The keras.ops calls fastnn saves and loads as operations of a functional model's config (a call on
# the model's tensors outside any layer's call; Keras 3 records it in module keras.src.ops.numpy, its
# arguments tensors or numbers): Keras's class name -> the fastnn.ops function. An
# Embedding(mask_zero=True) computes its mask with not_equal.
KERAS_OPERATIONS = {"NotEqual": "not_equal"}
KERAS_OPERATIONS_MODULE = "keras.src.ops.numpy"


def _literal(value):
    """A number Keras writes as it is among an operation's arguments."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class OpLayer(Layer):
    """One ``keras.ops`` call in a graph. ``kind`` None: the output is the
    input's values (no op); ``var``: the Variable the op reads at W_OFF. A call
    outside any layer's call (an operation of the model, as in Keras) is named
    as Keras names it, ``not_equal``, ``not_equal_1``...; ``call_args``: its
    arguments (tensors and numbers) where it can be saved (``keras_record``)."""
    hidden = True

    def __init__(self, op_name, kind, ints=(), consts=(), var=None):
        top_level = current_owner() is None and not _IN_LOSS and kind != K.PARAMETER
        super().__init__(name=unique_name(op_name) if top_level else op_name)
        self.op_name, self._kind, self._ints, self._consts, self._var = op_name, kind, ints, consts, var
        self._owner = current_owner()
        self.call_args = None
        self.built = True

    def keras_record(self):
        """Keras 3's record of this op as an operation of a functional config
        (``{"module", "class_name", "config", "registered_name"}``) and its call's arguments; raises
        NotImplementedError for an op fastnn cannot save that way."""
        class_name = next((k for k, v in KERAS_OPERATIONS.items() if v == self.op_name), None)
        args = self.call_args
        if class_name is None or args is None or not all(isinstance(a, KerasTensor) or _literal(a) for a in args):
            raise NotImplementedError(
                f"keras.ops.{self.op_name} called on a model's tensors outside a layer's call cannot be saved by "
                f"fastnn (of such calls it saves {', '.join(sorted(KERAS_OPERATIONS.values()))} with tensor or "
                "number arguments); compute it in the call of a layer of your own, or save the weights "
                "(save_weights)")
        args = [a if isinstance(a, KerasTensor) else np.asarray(a).item() for a in args]
        return {"module": KERAS_OPERATIONS_MODULE, "class_name": class_name, "config": {"name": self.name},
                "registered_name": class_name}, args

    def op(self, input_shape):
        if self._kind is None:
            return None
        return Op(self._kind, w=self._var, ints=self._ints, consts=self._consts)

    @property
    def trainable(self):
        """Whether the Variable it reads trains: the model trains exactly the
        trainable weights of the layer whose ``call`` made this op."""
        if self._var is None:
            return True
        return self._owner is not None and any(v is self._var for v in self._owner.trainable_weights)

    @trainable.setter
    def trainable(self, value):
        pass    # follows the owning layer (Layer.__init__ sets it)

    @property
    def trainable_weights(self):
        return [self._var] if self._var is not None and self.trainable else []

    def __repr__(self):
        return f"<OpLayer {self.op_name}>"


def _record(op_name, kind, inputs, shape, dtype="float32", ints=(), consts=(), var=None, batch_reduction=None):
    """Records the call on ``inputs`` (KerasTensors) making a tensor of per-sample ``shape``;
    ``batch_reduction``: the output is each sample's share of a batch-wide "mean" or "sum"."""
    if batch_reduction is None and any(t._batch_reduction for t in inputs):
        _unsupported(op_name, "its input is a reduction over the batch axis too (ops.mean or ops.sum with "
                     "axis=None); in a model such a value can only be scaled by a number, added to another one "
                     "and passed to add_loss. Reduce over the sample axes (e.g. axis=-1) to compute with it")
    layer = OpLayer(op_name, kind, tuple(int(i) for i in ints), tuple(float(c) for c in consts), var)
    layer.input_shape = [t.sample_shape for t in inputs] if len(inputs) != 1 else inputs[0].sample_shape
    layer.output_shape = tuple(shape)
    out = KerasTensor((None, *shape), name=op_name, dtype=dtype)
    out._batch_reduction = batch_reduction
    node = Node(layer, inputs[0] if len(inputs) == 1 else list(inputs), [out])
    out._keras_history = (layer, 0, 0)
    layer._inbound_nodes.append(node)
    return out


def _unsupported(op_name, why):
    raise ValueError(f"keras.ops.{op_name} on symbolic tensors: {why}")


# -- operands ------------------------------------------------------------------
def parameter(value, sample_ndim, op_name):
    """A non-symbolic operand as a tensor holding it in every row: a layer's
    Variable (trained) or a constant. Its leading axes beyond ``sample_ndim``
    line up with the batch axis and must have size 1."""
    if isinstance(value, Variable):
        arr = value.value
        if current_owner() is None:
            _unsupported(op_name, f"variable {value.name!r} is used outside a layer's call; a model trains "
                         "the weights of its layers, so create it with add_weight in a Layer")
    else:
        arr = np.asarray(value, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            _unsupported(op_name, "a constant operand contains NaN or inf")
    shape = tuple(arr.shape)
    while len(shape) > sample_ndim:
        if shape[0] != 1:
            _unsupported(op_name, f"an operand of shape {arr.shape} would broadcast along the batch axis")
        shape = shape[1:]
    if isinstance(value, Variable):
        return _record("parameter", K.PARAMETER, [], shape, var=value)
    return _record("constant", K.PARAMETER, [], shape, consts=arr.reshape(-1))


def _operands(values, op_name):
    ndim = max(len(v.sample_shape) for v in values if isinstance(v, KerasTensor))
    return [v if isinstance(v, KerasTensor) else parameter(v, ndim, op_name) for v in values]


def _strides(shape):
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return list(reversed(strides))


def _broadcast_strides(shape, out):
    """Strides of ``shape`` read as ``out`` (right-aligned; 0 where it broadcasts)."""
    shape = (1,) * (len(out) - len(shape)) + tuple(shape)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(shape, out, _strides(shape))]


def _sample_axis(axis, ndim, op_name):
    """A Keras axis of a tensor with ``ndim`` sample axes as a sample axis (0-based)."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        _unsupported(op_name, f"axis must be an int, got {axis!r}")
    full = ndim + 1
    if not -full <= axis < full:
        _unsupported(op_name, f"axis {axis} is out of range for a tensor of {full} axes")
    axis = axis % full
    if axis == 0:
        _unsupported(op_name, "axis 0 is the batch axis; in a model each sample is computed on its own")
    return axis - 1


# -- elementwise ----------------------------------------------------------------
def unary(op_name, x, p0=0.0, p1=0.0):
    if op_name not in _UNARY:
        _unsupported(op_name, "it has no compiled form")
    if op_name == "elu" and p0 == 0.0:
        p0 = 1.0
    x = _operands([x], op_name)[0]
    if op_name == "negative" and x._batch_reduction:
        return _record(op_name, K.UNARY, [x], (), ints=[K.NEG], consts=[0.0, 0.0], batch_reduction=x._batch_reduction)
    keeps_dtype = ("negative", "abs", "square", "sign", "stop_gradient")
    dtype = "bool" if op_name in _BOOL_RESULT else x.dtype if op_name in keeps_dtype else "float32"
    return _record(op_name, K.UNARY, [x], x.sample_shape, dtype, ints=[_UNARY[op_name]], consts=[p0, p1])


def _elementwise(op_name, code, values, dtype, batch_reduction=None):
    ranks = {len(v.shape) for v in values if isinstance(v, KerasTensor)}
    if len(ranks) > 1:
        _unsupported(op_name, f"tensors of shapes {[v.shape for v in values if isinstance(v, KerasTensor)]} "
                     "would broadcast along the batch axis (Keras aligns shapes from the right)")
    ts = _operands(values, op_name)
    try:
        shape = np.broadcast_shapes(*[t.sample_shape for t in ts])
    except ValueError:
        _unsupported(op_name, f"shapes {[t.shape for t in ts]} do not broadcast together")
    ints = [code, len(shape), *shape]
    for t in ts:
        ints += _broadcast_strides(t.sample_shape, shape)
    return _record(op_name, K.BROADCAST, ts, shape, dtype, ints=ints, batch_reduction=batch_reduction)


def binary(op_name, x1, x2):
    if op_name not in _BINARY:
        _unsupported(op_name, "it has no compiled form")
    if any(isinstance(v, KerasTensor) and v._batch_reduction for v in (x1, x2)):
        return _batch_linear(op_name, x1, x2)
    dtype = "bool" if op_name in _BOOL_RESULT else "float32"
    out = _elementwise(op_name, _BINARY[op_name], [x1, x2], dtype)
    out._keras_history[0].call_args = (x1, x2)
    return out


def where(condition, x1, x2):
    return _elementwise("where", K.WHERE, [condition, x1, x2], "float32")


def fill_like(x, value):
    return unary("fill", x, float(value))


def cast(x, dtype):
    """To a float: the same values; to an integer: truncated toward zero; to bool: x != 0."""
    if dtype.kind == "f":
        return _record("cast", None, [x], x.sample_shape, "float32")
    if dtype.kind == "b":
        out = unary("nonzero", x)
        out.dtype = "bool"
        return out
    out = unary("trunc", x)
    out.dtype = str(dtype)
    return out


# -- reductions --------------------------------------------------------------------
def _batch_reduce(op_name, x):
    """``ops.mean``/``ops.sum`` over every axis, the batch's too (what ``add_loss`` takes).
    A model computes each sample on its own, so this is each sample's share: its
    mean (the batch's mean is then the mean of the shares: samples have one
    size) or its sum, tagged so that only linear steps and add_loss may use it."""
    x = _operands([x], op_name)[0]
    axes = tuple(range(1, len(x.shape)))
    share = reduce(op_name, x, axes, False) if axes else _alias(op_name, x, ())
    share._batch_reduction = op_name
    return share


def _is_number(v):
    return (isinstance(v, Variable) and v.size == 1) or (not is_symbolic(v) and np.size(v) == 1)


def _batch_linear(op_name, x1, x2):
    """A step on a batch-wide reduction that stays one: times or divided by a
    number, plus another of the same kind (or, for a mean, plus a number)."""
    t1 = x1._batch_reduction if isinstance(x1, KerasTensor) else None
    t2 = x2._batch_reduction if isinstance(x2, KerasTensor) else None
    if op_name == "multiply" and ((t1 and _is_number(x2)) or (t2 and _is_number(x1))):
        mode = t1 or t2
    elif op_name in ("divide", "true_divide") and t1 and _is_number(x2):
        mode = t1
    elif op_name in ("add", "subtract") and t1 and t1 == t2:
        mode = t1
    elif op_name in ("add", "subtract") and (t1 or t2) == "mean" and _is_number(x2 if t1 else x1):
        mode = "mean"
    else:
        _unsupported(op_name, "an operand is a reduction over the batch axis too (ops.mean or ops.sum with "
                     "axis=None); in a model such a value can only be scaled by a number, added to another of the "
                     "same kind and passed to add_loss")
    return _elementwise(op_name, _BINARY[op_name], [x1, x2], "float32", batch_reduction=mode)


_IN_LOSS = []


@contextlib.contextmanager
def loss_trace():
    """While a loss is traced: a mean over all axes (axis=None) is each
    sample's mean, which the loop then averages over the batch: the same number."""
    _IN_LOSS.append(True)
    try:
        yield
    finally:
        _IN_LOSS.pop()


def _axes(axis, ndim, op_name):
    if axis is None and _IN_LOSS and op_name == "mean" and ndim:
        return list(range(ndim))
    if axis is None:
        _unsupported(op_name, "axis=None reduces over the batch axis too; in a model give the sample axes "
                     "(e.g. axis=-1)" + ("; in a loss only ops.mean may reduce over the batch" if _IN_LOSS else ""))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = sorted({_sample_axis(a, ndim, op_name) for a in axes})
    if len(out) != len(axes):
        _unsupported(op_name, f"axis {axis} repeats an axis")
    return out


def reduce(op_name, x, axis, keepdims):
    if axis is None and op_name in ("sum", "mean") and not _IN_LOSS and not keepdims:
        return _batch_reduce(op_name, x)
    x = _operands([x], op_name)[0]
    shape = x.sample_shape
    axes = _axes(axis, len(shape), op_name)
    if op_name in ("argmax", "argmin") and len(axes) != 1:
        _unsupported(op_name, "give one axis")
    strides = _strides(shape)
    kept = [d for d in range(len(shape)) if d not in axes]
    ints = [_REDUCE[op_name], len(kept), len(axes), *[shape[d] for d in kept], *[strides[d] for d in kept],
            *[shape[d] for d in axes], *[strides[d] for d in axes]]
    out = tuple(1 if d in axes else shape[d] for d in range(len(shape))) if keepdims else \
        tuple(shape[d] for d in kept)
    dtype = "int32" if op_name in ("argmax", "argmin") else "float32"
    return _record(op_name, K.REDUCE, [x], out, dtype, ints=ints)


def softmax(x, axis, log):
    op_name = "log_softmax" if log else "softmax"
    x = _operands([x], op_name)[0]
    shape = x.sample_shape
    if isinstance(axis, (tuple, list)):
        _unsupported(op_name, "give one axis")
    d = _sample_axis(axis, len(shape), op_name)
    ints = [int(log), math.prod(shape[:d]), shape[d], math.prod(shape[d + 1:])]
    return _record(op_name, K.SOFTMAX, [x], shape, ints=ints)


# -- matrix product -------------------------------------------------------------------
def matmul(x1, x2):
    ab = (1.0, 0.0, 1.0, 1.0)      # gemm's (alpha, beta): write, then add
    if not is_symbolic(x1):
        _unsupported("matmul", "the left operand must be the symbolic tensor (write x @ w, not w @ x; "
                     "transpose the weight if needed)")
    if not isinstance(x1, KerasTensor):
        _unsupported("matmul", f"got {type(x1).__name__}")
    s1 = x1.sample_shape
    if not s1:
        _unsupported("matmul", "a tensor of one value per sample has no matrix axes")
    p, n = math.prod(s1[:-1]), s1[-1]
    if isinstance(x2, KerasTensor):
        s2 = x2.sample_shape
        if len(s1) != 2 or len(s2) != 2:
            _unsupported("matmul", f"{x1.shape} @ {x2.shape}: of two symbolic tensors only stacks of matrices "
                         "(None, p, n) @ (None, n, m) keep the batch axis apart")
        m = s2[1]
        if s2[0] != n:
            _unsupported("matmul", f"shapes {x1.shape} and {x2.shape} do not match for a product")
        return _record("matmul", K.MATMUL, [x1, x2], (s1[0], m), ints=[K.M_SLOTS, p, n, m], consts=ab)
    var = x2 if isinstance(x2, Variable) else None
    w = x2.value if var is not None else np.asarray(x2, dtype=np.float32)
    if w.ndim not in (1, 2) or w.shape[0] != n:
        _unsupported("matmul", f"shapes {x1.shape} and {w.shape} do not match for a product")
    m = w.shape[1] if w.ndim == 2 else 1
    out = (*s1[:-1], *w.shape[1:])
    if var is not None:
        if current_owner() is None:
            _unsupported("matmul", f"variable {var.name!r} is used outside a layer's call; create it with "
                         "add_weight in a Layer")
        return _record("matmul", K.MATMUL, [x1], out, ints=[K.M_WEIGHT, p, n, m], consts=ab, var=var)
    if not np.all(np.isfinite(w)):
        _unsupported("matmul", "a constant operand contains NaN or inf")
    return _record("matmul", K.MATMUL, [x1], out, ints=[K.M_CONSTANT, p, n, m], consts=(*ab, *w.reshape(-1)))


# -- shapes ---------------------------------------------------------------------------------
def _alias(op_name, x, shape):
    return _record(op_name, None, [x], shape, x.dtype)


def expand_all(x, ndim):
    """A tensor of one value per sample as shape (1,) * ndim."""
    return _alias("reshape", x, (1,) * ndim)


def identity(x):
    """A node that passes ``x`` on (a layer whose call returns its input)."""
    return _alias("identity", x, x.sample_shape)


def reshape(x, newshape):
    newshape = tuple(newshape) if isinstance(newshape, (tuple, list)) else (newshape,)
    if not newshape or newshape[0] not in (-1, None):
        _unsupported("reshape", f"the new shape {newshape} must keep the batch axis first (-1 or None)")
    rest = [int(d) for d in newshape[1:]]
    size = x.sample_size
    if rest.count(-1) > 1 or any(d < -1 or d == 0 for d in rest):
        _unsupported("reshape", f"invalid shape {newshape}")
    if -1 in rest:
        known = math.prod(d for d in rest if d != -1)
        if size % known:
            _unsupported("reshape", f"cannot reshape {x.shape} to {newshape}")
        rest[rest.index(-1)] = size // known
    if math.prod(rest) != size:
        _unsupported("reshape", f"cannot reshape {x.shape} (samples of {size} values) to {newshape}")
    return _alias("reshape", x, tuple(rest))


def expand_dims(x, axis):
    x = _operands([x], "expand_dims")[0]
    shape = list(x.sample_shape)
    full = len(shape) + 2
    if not isinstance(axis, (int, np.integer)) or not -full <= axis < full:
        _unsupported("expand_dims", f"axis {axis!r} is out of range")
    axis = axis % full
    if axis == 0:
        _unsupported("expand_dims", "axis 0 would move the batch axis")
    shape.insert(axis - 1, 1)
    return _alias("expand_dims", x, tuple(shape))


def squeeze(x, axis=None):
    shape = x.sample_shape
    if axis is None:
        drop = {d for d, s in enumerate(shape) if s == 1}
    else:
        drop = set(_axes(axis, len(shape), "squeeze"))
        if any(shape[d] != 1 for d in drop):
            _unsupported("squeeze", f"axis {axis} of {x.shape} does not have size 1")
    return _alias("squeeze", x, tuple(s for d, s in enumerate(shape) if d not in drop))


def _strided(op_name, x, start, dims, strides):
    if start == 0 and list(strides) == _strides(dims) and math.prod(dims) == x.sample_size:
        return _alias(op_name, x, tuple(dims))
    return _record(op_name, K.STRIDED, [x], tuple(dims), x.dtype, ints=[len(dims), start, *dims, *strides])


def transpose(x, axes=None):
    shape = x.sample_shape
    if axes is None:
        if shape:
            _unsupported("transpose", "without axes it reverses the batch axis too; give axes starting with 0")
        return x
    axes = [int(a) % (len(shape) + 1) for a in axes]
    if sorted(axes) != list(range(len(shape) + 1)) or axes[0] != 0:
        _unsupported("transpose", f"axes {tuple(axes)} must be a permutation keeping the batch axis 0 first")
    perm = [a - 1 for a in axes[1:]]
    strides = _strides(shape)
    return _strided("transpose", x, 0, [shape[d] for d in perm], [strides[d] for d in perm])


def getitem(x, key):
    """Basic indexing: ints, slices (with steps), None and Ellipsis; the batch axis must be taken whole."""
    key = key if isinstance(key, tuple) else (key,)
    shape = x.sample_shape
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if sum(1 for k in key if k is Ellipsis) > 1:
        _unsupported("getitem", "at most one Ellipsis")
    if n_real > len(shape) + 1:
        _unsupported("getitem", f"too many indices for a tensor of shape {x.shape}")
    expanded = []
    for k in key:
        if k is Ellipsis:
            expanded += [slice(None)] * (len(shape) + 1 - n_real)
        else:
            expanded.append(k)
    expanded += [slice(None)] * (len(shape) + 1 - sum(1 for k in expanded if k is not None))
    if expanded[0] is None:
        _unsupported("getitem", "a new axis before the batch axis")
    if expanded[0] != slice(None):     # picking samples depends on the data: it cannot be traced
        raise TypeError("keras.ops.getitem on symbolic tensors: the batch axis (the first index) must be ':'; "
                        "a model computes each sample on its own, so select samples before the model")
    strides_in = _strides(shape)
    start, dims, strides, axis = 0, [], [], 0
    for k in expanded[1:]:
        if k is None:
            dims.append(1)
            strides.append(0)
            continue
        size = shape[axis]
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            if not -size <= k < size:
                _unsupported("getitem", f"index {k} is out of range for axis {axis + 1} of size {size}")
            start += (int(k) % size) * strides_in[axis]
        elif isinstance(k, slice):
            lo, hi, step = k.indices(size)
            count = len(range(lo, hi, step))
            if count == 0:
                _unsupported("getitem", f"slice {k} of axis {axis + 1} is empty")
            start += lo * strides_in[axis]
            dims.append(count)
            strides.append(step * strides_in[axis])
        else:
            _unsupported("getitem", f"index {k!r}: only ints, slices, None and Ellipsis (basic indexing)")
        axis += 1
    return _strided("getitem", x, start, dims, strides)


def concatenate(xs, axis):
    ts = _operands(xs, "concatenate")
    shapes = [t.sample_shape for t in ts]
    ndim = len(shapes[0])
    if any(len(s) != ndim for s in shapes):
        _unsupported("concatenate", f"the tensors have different numbers of axes: {[t.shape for t in ts]}")
    d = _sample_axis(axis, ndim, "concatenate")
    if any(s[:d] + s[d + 1:] != shapes[0][:d] + shapes[0][d + 1:] for s in shapes):
        _unsupported("concatenate", f"shapes {[t.shape for t in ts]} differ outside axis {axis}")
    out = (*shapes[0][:d], sum(s[d] for s in shapes), *shapes[0][d + 1:])
    inner = [math.prod(s[d:]) for s in shapes]
    return _record("concatenate", merging.CONCATENATE, ts, out, ints=[math.prod(shapes[0][:d]), *inner])



# -- add_loss -----------------------------------------------------------------------------------
ADD_MEAN, ADD_SUM = 0, 1     # how the loop totals an added loss's per-sample shares over a batch


def loss_term(t):
    """(per-sample tensor, ADD_MEAN or ADD_SUM) for ``add_loss(t)``: a batch-wide
    mean or sum as it is; any other tensor summed over all its values, as Keras
    sums an added loss."""
    if not t._batch_reduction:
        t = _batch_reduce("sum", t)
    return t, ADD_MEAN if t._batch_reduction == "mean" else ADD_SUM


# -- reductions and maps written with the kinds above ---------------------------------------------
def _need_axis(op_name, axis):
    if axis is None:
        _unsupported(op_name, "axis=None reduces over the batch axis too; in a model give the sample axes "
                     "(e.g. axis=-1)")


def moments(op_name, x, axis, keepdims):
    """``ops.var`` (``op_name`` "var") or ``ops.std``: the mean of the squared
    deviations from the mean over ``axis`` (biased, as Keras), its square root for std."""
    _need_axis(op_name, axis)
    x = _operands([x], op_name)[0]
    deviation = binary("subtract", x, reduce("mean", x, axis, True))
    var = reduce("mean", unary("square", deviation), axis, keepdims)
    return unary("sqrt", var) if op_name == "std" else var


def any_all(op_name, x, axis, keepdims):
    """``ops.any`` / ``ops.all``: the largest / smallest of ``x != 0`` over ``axis`` (bool)."""
    _need_axis(op_name, axis)
    out = reduce("max" if op_name == "any" else "min", unary("nonzero", x), axis, keepdims)
    out.dtype = "bool"
    return out


def cumsum(x, axis):
    """Running sums along ``axis``: the axis moved last, times the upper
    triangle of ones (a constant matrix product), moved back."""
    if axis is None:
        _unsupported("cumsum", "axis=None runs over the flattened tensor, the batch axis too; give a sample axis")
    x = _operands([x], "cumsum")[0]
    ndim = len(x.sample_shape)
    d = _sample_axis(axis, ndim, "cumsum") + 1
    order = [0] + [a for a in range(1, ndim + 1) if a != d] + [d]
    moved = transpose(x, order)
    length = x.sample_shape[d - 1]
    summed = matmul(moved, np.triu(np.ones((length, length), dtype=np.float32)))
    return transpose(summed, list(np.argsort(order)))


def _index_map(op_name, x, fn):
    """``x`` rearranged as ``fn`` (a NumPy function of an array of one sample's
    shape) rearranges the array of its value indices: each output value copies
    the input value whose index lands there. Every index comes from the input,
    so the compiled op never reads outside it."""
    x = _operands([x], op_name)[0]
    index = np.asarray(fn(np.arange(x.sample_size, dtype=np.int64).reshape(x.sample_shape)))
    if index.size == 0:
        _unsupported(op_name, "the result would be empty")
    return _record(op_name, K.STRIDED, [x], index.shape, x.dtype, ints=[-1, *index.reshape(-1)])


def tile(x, repeats):
    """``x`` repeated ``repeats`` times along each axis (NumPy's ``tile``); the batch axis's count must be 1."""
    reps = [int(r) for r in np.atleast_1d(repeats)]
    full = len(x.shape)
    if len(reps) > full:
        _unsupported("tile", f"repeats {tuple(reps)} has more entries than {x.shape} has axes")
    reps = [1] * (full - len(reps)) + reps
    if reps[0] != 1:
        _unsupported("tile", "the batch axis (repeats[0]) must be repeated once; a model computes each sample on "
                     "its own")
    if any(r < 0 for r in reps):
        _unsupported("tile", f"repeats {tuple(reps)} must not be negative")
    return _index_map("tile", x, lambda idx: np.tile(idx, reps[1:]))


def repeat(x, repeats, axis):
    """Each value along sample ``axis`` repeated ``repeats`` times (an int, or one count per value)."""
    if axis is None:
        _unsupported("repeat", "axis=None repeats the flattened tensor, the batch axis too; give a sample axis")
    d = _sample_axis(axis, len(x.sample_shape), "repeat")
    counts = np.asarray(repeats)
    if counts.dtype.kind not in "iu" or counts.ndim > 1 or np.any(counts < 0) or \
            (counts.ndim == 1 and counts.size not in (1, x.sample_shape[d])):
        _unsupported("repeat", f"repeats {repeats!r} must be a non-negative int or one per value of axis {axis}")
    return _index_map("repeat", x, lambda idx: np.repeat(idx, counts, axis=d))


def flip(x, axis):
    """``x`` with the order of the values along ``axis`` (an int or a tuple of sample axes) reversed."""
    if axis is None:
        _unsupported("flip", "axis=None reverses every axis, the batch axis too; give the sample axes")
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    ndim = len(x.sample_shape)
    dims = [_sample_axis(a, ndim, "flip") for a in axes]
    shape, strides, start = list(x.sample_shape), _strides(x.sample_shape), 0
    for d in set(dims):
        start += (shape[d] - 1) * strides[d]
        strides[d] = -strides[d]
    return _strided("flip", x, start, shape, strides)


def one_hot(x, num_classes, axis):
    """``x``'s integer labels as one-hot vectors of ``num_classes`` along ``axis``
    (float32): ``x`` (with a new axis) == each class index. A label outside
    [0, num_classes) or not a whole number is all zeros, as in TensorFlow."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        _unsupported("one_hot", f"num_classes must be a positive int, got {num_classes!r}")
    x = _operands([x], "one_hot")[0]
    ndim = len(x.sample_shape)
    full = ndim + 2
    if not isinstance(axis, (int, np.integer)) or not -full <= axis < full or axis % full == 0:
        _unsupported("one_hot", f"axis {axis!r} must be a sample axis of the result")
    d = axis % full                  # the classes' axis in the result (the batch axis is 0)
    classes = np.arange(num_classes, dtype=np.float32).reshape((num_classes,) + (1,) * (full - 1 - d))
    out = binary("equal", expand_dims(x, d), classes)
    out.dtype = "float32"
    return out
