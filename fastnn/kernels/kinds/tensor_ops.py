"""The kinds ``keras.ops`` calls on symbolic tensors compile to (``fastnn.ops.graph``).

Few and generic, each driven by integer constants at ``ints[IAUX]``; shapes
are per sample (the batch is the ``b`` rows of every slot):

- Parameter: a weight (at W_OFF) or constants (at AUX, W_OFF = -1) copied
  to every row; backward sums the rows into the weight's gradient.
- Unary: ``a = f(x)`` elementwise, f by code; its numbers at AUX.
- Broadcast: ``a = f(x0, x1[, x2])`` elementwise with NumPy broadcasting.
  ints: [code, ndim, out dims (ndim), then per input its strides (ndim; 0
  on a broadcast axis)].
- Reduce: over some axes of each sample. ints: [code, kept axes k, reduced
  axes r, kept dims (k), kept strides (k), reduced dims (r), reduced strides (r)].
- Softmax: softmax or log-softmax along one axis. ints: [log?, outer, length, inner].
- MatMul: ints [mode, p, n, m]: each sample's p x n rows times an n x m
  matrix: the weight at W_OFF (mode 0), the second input's slot (mode 1,
  one product per sample), or constants at AUX + 4 (mode 2); consts at AUX
  are (alpha, beta) = (1, 0) then (1, 1) for ``gemm``.
- Strided: a strided view of the input (transpose, slicing, flip). ints:
  [ndim, start, out dims (ndim), input strides (ndim)]; or an index map
  (tile, repeat): [-1, then per output value the input value it copies].

Gradients of inputs that several output values read (broadcasting,
reductions, views) are summed: the input's gradient block is zeroed first
unless its ACC bit says another op already wrote it.
"""
import math

import numpy as np
from numba import njit

from .. import program as P
from ..cpu.activations import _INV_SQRT2, _INV_SQRT_2PI, _SELU_ALPHA, _SELU_SCALE, _sigmoid
from ..cpu.blas import gemm
from . import KERNEL, input_slot, put, register

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)


@njit(cache=True, inline="always")
def _needs_dx(rec):
    return (rec[P.FLAGS] & P.NEED_DX) != 0


@njit(cache=True, inline="always")
def _acc(rec, k):
    return ((rec[P.ACC] >> k) & 1) != 0


@njit(cache=True, inline="always")
def _zero_unless_acc(rec, gs, k, start, size):
    if not _acc(rec, k):
        for j in range(size):
            gs[start + j] = _ZERO


# -- Parameter ---------------------------------------------------------------
@njit(**KERNEL)
def param_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    n, a, w, c = rec[P.N_OUT], b * rec[P.A_POS], rec[P.W_OFF], rec[P.AUX]
    for r in range(b):
        for j in range(n):
            ws[a + r * n + j] = params[w + j] if w >= 0 else consts[c + j]


@njit(**KERNEL)
def param_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    """d loss / d weight = the sum over the rows of the slot's gradient."""
    w = rec[P.W_OFF]
    if w < 0 or (rec[P.FLAGS] & P.FROZEN) != 0:
        return
    n, a = rec[P.N_OUT], b * rec[P.A_POS]
    if (rec[P.FLAGS] & P.W_ACC) == 0:
        for j in range(n):
            grads[w + j] = _ZERO
    for r in range(b):
        for j in range(n):
            grads[w + j] += gs[a + r * n + j]


PARAMETER = register("Parameter", param_forward, param_backward, shareable=True)

# -- Unary ---------------------------------------------------------------------
(NEG, SQUARE, SQRT, EXP, LOG, ABS, SIGN, RELU, SIGMOID, TANH, ELU, SELU, GELU, GELU_TANH, SOFTPLUS, SILU,
 LEAKY_RELU, HARD_SIGMOID, SOFTSIGN, CLIP, LOG1P, EXPM1, TRUNC, NOT, NONZERO, FILL, STOP_GRADIENT) = range(27)
_SQRT_2_OVER_PI = np.float32(0.7978845608028654)
_GELU_K = np.float32(0.044715)


@njit(cache=True)
def unary_value(code, x, p0, p1):
    """f(x) for unary ``code`` with numbers p0, p1 (ELU alpha, slope, clip bounds, fill value)."""
    if code == NEG:
        return -x
    if code == SQUARE:
        return x * x
    # out of range: inf, -inf or NaN as in NumPy (the loop's loss check then stops fit)
    if code == SQRT:
        return np.float32(np.sqrt(x))
    if code == EXP:
        return np.float32(np.exp(x))
    if code == LOG:
        return np.float32(np.log(x))
    if code == ABS:
        return abs(x)
    if code == SIGN:
        return _ONE if x > _ZERO else (-_ONE if x < _ZERO else _ZERO)
    if code == RELU:
        return x if x > _ZERO else _ZERO
    if code == SIGMOID:
        return _sigmoid(x)
    if code == TANH:
        return np.float32(math.tanh(x))
    if code == ELU:
        return x if x > _ZERO else p0 * np.float32(math.expm1(x))
    if code == SELU:
        return _SELU_SCALE * x if x > _ZERO else _SELU_SCALE * _SELU_ALPHA * np.float32(math.expm1(x))
    if code == GELU:
        return _HALF * x * (_ONE + np.float32(math.erf(x * _INV_SQRT2)))
    if code == GELU_TANH:
        return _HALF * x * (_ONE + np.float32(math.tanh(_SQRT_2_OVER_PI * (x + _GELU_K * x * x * x))))
    if code == SOFTPLUS:
        return max(x, _ZERO) + np.float32(math.log1p(math.exp(-abs(x))))
    if code == SILU:
        return x * _sigmoid(x)
    if code == LEAKY_RELU:
        return x if x > _ZERO else p0 * x
    if code == HARD_SIGMOID:
        return min(max(x / np.float32(6.0) + _HALF, _ZERO), _ONE)
    if code == SOFTSIGN:
        return x / (_ONE + abs(x))
    if code == CLIP:
        return min(max(x, p0), p1)
    if code == LOG1P:
        return np.float32(np.log1p(x))
    if code == EXPM1:
        return np.float32(np.expm1(x))
    if code == TRUNC:
        return np.float32(np.trunc(x))
    if code == NOT:
        return _ONE if x == _ZERO else _ZERO
    if code == NONZERO:
        return _ZERO if x == _ZERO else _ONE
    if code == STOP_GRADIENT:
        return x
    return p0    # FILL


@njit(cache=True)
def unary_derivative(code, x, a, p0, p1):
    """d f / d x at x (a = f(x)); 0 for the steps (sign, casts, logic, fills) and stop_gradient."""
    if code == NEG:
        return -_ONE
    if code == SQUARE:
        return np.float32(2.0) * x
    if code == SQRT:
        return _HALF / a
    if code == EXP:
        return a
    if code == LOG:
        return _ONE / x
    if code == ABS:
        return _ONE if x > _ZERO else (-_ONE if x < _ZERO else _ZERO)
    if code == RELU:
        return _ONE if x > _ZERO else _ZERO
    if code == SIGMOID:
        return a * (_ONE - a)
    if code == TANH:
        return _ONE - a * a
    if code == ELU:
        return _ONE if x > _ZERO else a + p0
    if code == SELU:
        return _SELU_SCALE if x > _ZERO else a + _SELU_SCALE * _SELU_ALPHA
    if code == GELU:
        return _HALF * (_ONE + np.float32(math.erf(x * _INV_SQRT2))) + \
            x * _INV_SQRT_2PI * np.float32(math.exp(-_HALF * x * x))
    if code == GELU_TANH:
        t = np.float32(math.tanh(_SQRT_2_OVER_PI * (x + _GELU_K * x * x * x)))
        return _HALF * (_ONE + t) + _HALF * x * (_ONE - t * t) * _SQRT_2_OVER_PI * \
            (_ONE + np.float32(3.0) * _GELU_K * x * x)
    if code == SOFTPLUS:
        return _sigmoid(x)
    if code == SILU:
        s = _sigmoid(x)
        return s + x * s * (_ONE - s)
    if code == LEAKY_RELU:
        return _ONE if x > _ZERO else p0
    if code == HARD_SIGMOID:
        return _ONE / np.float32(6.0) if np.float32(-3.0) < x < np.float32(3.0) else _ZERO
    if code == SOFTSIGN:
        d = _ONE + abs(x)
        return _ONE / (d * d)
    if code == CLIP:
        return _ONE if p0 <= x <= p1 else _ZERO     # TensorFlow's clip passes the gradient at the bounds
    if code == LOG1P:
        return _ONE / (_ONE + x)
    if code == EXPM1:
        return a + _ONE
    return _ZERO


@njit(**KERNEL)
def unary_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    code, c = ints[rec[P.IAUX]], rec[P.AUX]
    p0, p1 = consts[c], consts[c + 1]
    x, a = b * rec[P.X_POS], b * rec[P.A_POS]
    for k in range(b * rec[P.N_OUT]):
        ws[a + k] = unary_value(code, ws[x + k], p0, p1)


@njit(**KERNEL)
def unary_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if not _needs_dx(rec):
        return
    code, c = ints[rec[P.IAUX]], rec[P.AUX]
    p0, p1 = consts[c], consts[c + 1]
    x, a, acc = b * rec[P.X_POS], b * rec[P.A_POS], _acc(rec, 0)
    for k in range(b * rec[P.N_OUT]):
        put(gs, x + k, gs[a + k] * unary_derivative(code, ws[x + k], ws[a + k], p0, p1), acc)


UNARY = register("Unary", unary_forward, unary_backward, shareable=True)

# -- Broadcast (elementwise on one to three inputs) -------------------------------
(ADD, SUBTRACT, MULTIPLY, DIVIDE, POWER, MAXIMUM, MINIMUM, GREATER, GREATER_EQUAL, LESS, LESS_EQUAL, EQUAL,
 NOT_EQUAL, AND, OR, WHERE) = range(16)


@njit(cache=True)
def binary_value(code, x, y, z):
    if code == ADD:
        return x + y
    if code == SUBTRACT:
        return x - y
    if code == MULTIPLY:
        return x * y
    if code == DIVIDE:
        return x / y
    if code == POWER:
        return np.float32(x ** y)
    if code == MAXIMUM:
        return x if x >= y else y
    if code == MINIMUM:
        return x if x <= y else y
    if code == GREATER:
        return _ONE if x > y else _ZERO
    if code == GREATER_EQUAL:
        return _ONE if x >= y else _ZERO
    if code == LESS:
        return _ONE if x < y else _ZERO
    if code == LESS_EQUAL:
        return _ONE if x <= y else _ZERO
    if code == EQUAL:
        return _ONE if x == y else _ZERO
    if code == NOT_EQUAL:
        return _ONE if x != y else _ZERO
    if code == AND:
        return _ONE if x != _ZERO and y != _ZERO else _ZERO
    if code == OR:
        return _ONE if x != _ZERO or y != _ZERO else _ZERO
    return y if x != _ZERO else z      # WHERE(condition, x, y): the inputs are (x, y, z) here


@njit(cache=True)
def binary_derivative(code, k, x, y, z, a):
    """d f / d input ``k`` (0, 1 or 2) at (x, y, z) with a = f(x, y, z). Ties
    of maximum/minimum go to the first input, as TensorFlow's gradients do."""
    if code == ADD:
        return _ONE
    if code == SUBTRACT:
        return _ONE if k == 0 else -_ONE
    if code == MULTIPLY:
        return y if k == 0 else x
    if code == DIVIDE:
        return _ONE / y if k == 0 else -x / (y * y)
    if code == POWER:
        if k == 0:
            return y * np.float32(x ** (y - _ONE)) if y != _ZERO else _ZERO
        return a * np.float32(math.log(x)) if x > _ZERO else _ZERO
    if code == MAXIMUM:
        return _ONE if (x >= y) == (k == 0) else _ZERO
    if code == MINIMUM:
        return _ONE if (x <= y) == (k == 0) else _ZERO
    if code == WHERE:
        if k == 0:
            return _ZERO
        return _ONE if (x != _ZERO) == (k == 1) else _ZERO
    return _ZERO


@njit(cache=True, inline="always")
def _offset(ints, base, ndim, j, k):
    """Input ``k``'s offset of output element ``j`` (strides of input k after the out dims)."""
    off = 0
    rem = j
    strides = base + ndim * (k + 1)
    for d in range(ndim - 1, -1, -1):
        dim = ints[base + d]
        off += (rem % dim) * ints[strides + d]
        rem //= dim
    return off


@njit(**KERNEL)
def broadcast_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    code, ndim = ints[rec[P.IAUX]], ints[rec[P.IAUX] + 1]
    dims = rec[P.IAUX] + 2
    n, a, k_in = rec[P.N_OUT], b * rec[P.A_POS], rec[P.N_INS]
    p0, n0 = input_slot(rec, ints, 0)
    p1, n1 = input_slot(rec, ints, 1) if k_in > 1 else (p0, n0)
    p2, n2 = input_slot(rec, ints, 2) if k_in > 2 else (p0, n0)
    for r in range(b):
        for j in range(n):
            x = ws[b * p0 + r * n0 + _offset(ints, dims, ndim, j, 0)]
            y = ws[b * p1 + r * n1 + _offset(ints, dims, ndim, j, 1)] if k_in > 1 else _ZERO
            z = ws[b * p2 + r * n2 + _offset(ints, dims, ndim, j, 2)] if k_in > 2 else _ZERO
            ws[a + r * n + j] = binary_value(code, x, y, z)


@njit(**KERNEL)
def broadcast_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if not _needs_dx(rec):
        return
    code, ndim = ints[rec[P.IAUX]], ints[rec[P.IAUX] + 1]
    dims = rec[P.IAUX] + 2
    n, a, k_in = rec[P.N_OUT], b * rec[P.A_POS], rec[P.N_INS]
    p0, n0 = input_slot(rec, ints, 0)
    p1, n1 = input_slot(rec, ints, 1) if k_in > 1 else (p0, n0)
    p2, n2 = input_slot(rec, ints, 2) if k_in > 2 else (p0, n0)
    for k in range(k_in):
        pk, nk = input_slot(rec, ints, k)
        _zero_unless_acc(rec, gs, k, b * pk, b * nk)
        for r in range(b):
            for j in range(n):
                o0 = _offset(ints, dims, ndim, j, 0)
                x = ws[b * p0 + r * n0 + o0]
                y = ws[b * p1 + r * n1 + _offset(ints, dims, ndim, j, 1)] if k_in > 1 else _ZERO
                z = ws[b * p2 + r * n2 + _offset(ints, dims, ndim, j, 2)] if k_in > 2 else _ZERO
                d = binary_derivative(code, k, x, y, z, ws[a + r * n + j])
                gs[b * pk + r * nk + _offset(ints, dims, ndim, j, k)] += gs[a + r * n + j] * d


BROADCAST = register("Broadcast", broadcast_forward, broadcast_backward, shareable=True)

# -- Reduce ------------------------------------------------------------------------
R_SUM, R_MEAN, R_MAX, R_MIN, R_LOGSUMEXP, R_ARGMAX, R_ARGMIN, R_PROD = range(8)


@njit(cache=True, inline="always")
def _index(ints, dims, strides, count, j):
    off = 0
    for d in range(count - 1, -1, -1):
        dim = ints[dims + d]
        off += (j % dim) * ints[strides + d]
        j //= dim
    return off


@njit(cache=True, inline="always")
def _reduce_layout(rec, ints):
    """(code, kept axes, reduced axes, their dims/strides positions in ints, values per output)."""
    base = rec[P.IAUX]
    code, k, r = ints[base], ints[base + 1], ints[base + 2]
    kd = base + 3
    ks, rd = kd + k, kd + 2 * k
    rs = rd + r
    count = 1
    for d in range(r):
        count *= ints[rd + d]
    return code, k, r, kd, ks, rd, rs, count


@njit(**KERNEL)
def reduce_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    code, k, r, kd, ks, rd, rs, count = _reduce_layout(rec, ints)
    n, n_in, x, a = rec[P.N_OUT], rec[P.N_IN], b * rec[P.X_POS], b * rec[P.A_POS]
    for row in range(b):
        for o in range(n):
            base = x + row * n_in + _index(ints, kd, ks, k, o)
            first = ws[base + _index(ints, rd, rs, r, 0)]
            if code == R_SUM or code == R_MEAN:
                total = 0.0
                for t in range(count):
                    total += ws[base + _index(ints, rd, rs, r, t)]
                value = np.float32(total / count) if code == R_MEAN else np.float32(total)
            elif code == R_PROD:
                total = 1.0
                for t in range(count):
                    total *= ws[base + _index(ints, rd, rs, r, t)]
                value = np.float32(total)
            elif code == R_LOGSUMEXP:
                m = first
                for t in range(count):
                    m = max(m, ws[base + _index(ints, rd, rs, r, t)])
                total = 0.0
                for t in range(count):
                    total += math.exp(ws[base + _index(ints, rd, rs, r, t)] - m)
                value = np.float32(m + math.log(total))
            else:
                best, at = first, 0
                for t in range(1, count):
                    v = ws[base + _index(ints, rd, rs, r, t)]
                    if ((code == R_MAX or code == R_ARGMAX) and v > best) or \
                            ((code == R_MIN or code == R_ARGMIN) and v < best):
                        best, at = v, t
                value = best if code == R_MAX or code == R_MIN else np.float32(at)
            ws[a + row * n + o] = value


@njit(cache=True, inline="always")
def _prod_backward(ws, gs, ints, base, rd, rs, r, count, g):
    """Adds g * prod(others) to each value's gradient: the product of the
    non-zero values, times 0 unless the value is the only zero."""
    zeros, nonzero = 0, 1.0
    for t in range(count):
        v = ws[base + _index(ints, rd, rs, r, t)]
        if v == _ZERO:
            zeros += 1
        else:
            nonzero *= v
    for t in range(count):
        i = base + _index(ints, rd, rs, r, t)
        if zeros == 0:
            gs[i] += g * np.float32(nonzero / ws[i])
        elif zeros == 1 and ws[i] == _ZERO:
            gs[i] += g * np.float32(nonzero)


@njit(**KERNEL)
def reduce_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    """Sum: g to every value; mean: g / count; max/min: g shared by the values
    equal to the result (as TensorFlow); logsumexp: g * exp(x - result); arg*: 0;
    prod: g times the product of the other values (with one zero among them: 0, except at that zero)."""
    if not _needs_dx(rec):
        return
    code, k, r, kd, ks, rd, rs, count = _reduce_layout(rec, ints)
    n, n_in, x, a = rec[P.N_OUT], rec[P.N_IN], b * rec[P.X_POS], b * rec[P.A_POS]
    _zero_unless_acc(rec, gs, 0, x, b * n_in)
    if code == R_ARGMAX or code == R_ARGMIN:
        return
    for row in range(b):
        for o in range(n):
            base = x + row * n_in + _index(ints, kd, ks, k, o)
            g, result = gs[a + row * n + o], ws[a + row * n + o]
            if code == R_MAX or code == R_MIN:
                ties = 0
                for t in range(count):
                    if ws[base + _index(ints, rd, rs, r, t)] == result:
                        ties += 1
                g = g / np.float32(max(ties, 1))
            elif code == R_MEAN:
                g = g / np.float32(count)
            elif code == R_PROD:
                _prod_backward(ws, gs, ints, base, rd, rs, r, count, g)
                continue
            for t in range(count):
                i = base + _index(ints, rd, rs, r, t)
                if code == R_SUM or code == R_MEAN:
                    gs[i] += g
                elif code == R_LOGSUMEXP:
                    gs[i] += g * np.float32(math.exp(ws[i] - result))
                elif ws[i] == result:
                    gs[i] += g


REDUCE = register("Reduce", reduce_forward, reduce_backward, shareable=True)


# -- Softmax along an axis -----------------------------------------------------------
@njit(**KERNEL)
def softmax_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    base = rec[P.IAUX]
    log, outer, length, inner = ints[base], ints[base + 1], ints[base + 2], ints[base + 3]
    n, x, a = rec[P.N_OUT], b * rec[P.X_POS], b * rec[P.A_POS]
    for row in range(b):
        for o in range(outer):
            for i in range(inner):
                start = row * n + o * length * inner + i
                m = ws[x + start]
                for t in range(length):
                    m = max(m, ws[x + start + t * inner])
                total = 0.0
                for t in range(length):
                    total += math.exp(ws[x + start + t * inner] - m)
                for t in range(length):
                    v = ws[x + start + t * inner] - m
                    ws[a + start + t * inner] = np.float32(v - math.log(total)) if log != 0 else \
                        np.float32(math.exp(v) / total)


@njit(**KERNEL)
def softmax_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    """softmax: g_x = a * (g - sum(g * a)); log-softmax: g_x = g - exp(a) * sum(g)."""
    if not _needs_dx(rec):
        return
    base = rec[P.IAUX]
    log, outer, length, inner = ints[base], ints[base + 1], ints[base + 2], ints[base + 3]
    n, x, a, acc = rec[P.N_OUT], b * rec[P.X_POS], b * rec[P.A_POS], _acc(rec, 0)
    for row in range(b):
        for o in range(outer):
            for i in range(inner):
                start = row * n + o * length * inner + i
                total = 0.0
                for t in range(length):
                    j = start + t * inner
                    total += gs[a + j] if log != 0 else gs[a + j] * ws[a + j]
                for t in range(length):
                    j = start + t * inner
                    if log != 0:
                        v = gs[a + j] - np.float32(math.exp(ws[a + j]) * total)
                    else:
                        v = ws[a + j] * (gs[a + j] - np.float32(total))
                    put(gs, x + j, np.float32(v), acc)


SOFTMAX = register("Softmax", softmax_forward, softmax_backward, shareable=True)

# -- MatMul ----------------------------------------------------------------------------
M_WEIGHT, M_SLOTS, M_CONSTANT = range(3)


@njit(**KERNEL)
def matmul_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    base, c = rec[P.IAUX], rec[P.AUX]
    mode, p, n, m = ints[base], ints[base + 1], ints[base + 2], ints[base + 3]
    write = consts[c:c + 2]
    x, a = b * rec[P.X_POS], b * rec[P.A_POS]
    if mode == M_WEIGHT:
        gemm(False, False, b * p, m, n, write, ws, x, n, params, rec[P.W_OFF], m, ws, a, m)
    elif mode == M_CONSTANT:
        gemm(False, False, b * p, m, n, write, ws, x, n, consts, c + 4, m, ws, a, m)
    else:
        y, _ = input_slot(rec, ints, 1)
        for s in range(b):
            gemm(False, False, p, m, n, write, ws, x + s * p * n, n, ws, b * y + s * n * m, m, ws, a + s * p * m, m)


@njit(**KERNEL)
def matmul_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    """dX = dA @ Y^T; dY = X^T @ dA (summed over the batch for a weight)."""
    base, c = rec[P.IAUX], rec[P.AUX]
    mode, p, n, m = ints[base], ints[base + 1], ints[base + 2], ints[base + 3]
    write, add = consts[c:c + 2], consts[c + 2:c + 4]
    flags = rec[P.FLAGS]
    x, a = b * rec[P.X_POS], b * rec[P.A_POS]
    need_dx = (flags & P.NEED_DX) != 0
    if mode == M_WEIGHT:
        w = rec[P.W_OFF]
        if need_dx:
            gemm(False, True, b * p, n, m, add if _acc(rec, 0) else write, gs, a, m, params, w, m, gs, x, n)
        if (flags & P.FROZEN) == 0:
            gemm(True, False, n, m, b * p, add if (flags & P.W_ACC) != 0 else write, ws, x, n, gs, a, m, grads, w, m)
    elif mode == M_CONSTANT:
        if need_dx:
            gemm(False, True, b * p, n, m, add if _acc(rec, 0) else write, gs, a, m, consts, c + 4, m, gs, x, n)
    elif need_dx:
        y, _ = input_slot(rec, ints, 1)
        y = b * y
        ab0, ab1 = (add if _acc(rec, 0) else write), (add if _acc(rec, 1) else write)
        for s in range(b):
            gemm(False, True, p, n, m, ab0, gs, a + s * p * m, m, ws, y + s * n * m, m, gs, x + s * p * n, n)
        for s in range(b):
            gemm(True, False, n, m, p, ab1, ws, x + s * p * n, n, gs, a + s * p * m, m, gs, y + s * n * m, m)


MATMUL = register("MatMul", matmul_forward, matmul_backward, shareable=True)


# -- Strided views (transpose, slicing, flip) and index maps (tile, repeat) -----------------
@njit(cache=True, inline="always")
def _source(ints, base, j):
    """The input value that output value ``j`` copies: strided, or from the index map."""
    ndim = ints[base]
    if ndim < 0:
        return ints[base + 1 + j]
    return ints[base + 1] + _index(ints, base + 2, base + 2 + ndim, ndim, j)


@njit(**KERNEL)
def strided_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    base = rec[P.IAUX]
    n, n_in, x, a = rec[P.N_OUT], rec[P.N_IN], b * rec[P.X_POS], b * rec[P.A_POS]
    for r in range(b):
        for j in range(n):
            ws[a + r * n + j] = ws[x + r * n_in + _source(ints, base, j)]


@njit(**KERNEL)
def strided_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if not _needs_dx(rec):
        return
    base = rec[P.IAUX]
    n, n_in, x, a = rec[P.N_OUT], rec[P.N_IN], b * rec[P.X_POS], b * rec[P.A_POS]
    _zero_unless_acc(rec, gs, 0, x, b * n_in)
    for r in range(b):
        for j in range(n):
            gs[x + r * n_in + _source(ints, base, j)] += gs[a + r * n + j]


STRIDED = register("Strided", strided_forward, strided_backward, shareable=True)
