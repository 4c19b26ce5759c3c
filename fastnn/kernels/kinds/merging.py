"""Merge kinds: elementwise merges of inputs of one shape (Add, Subtract,
Multiply, Average, Maximum, Minimum), and Concatenate along an axis.

Elementwise merges read their mode at ``ints[IAUX]``. Concatenate reads
``ints[IAUX:]`` = [outer, inner_0, ..., inner_{k-1}]: each sample is
``outer`` blocks, and block ``o`` of the output is block ``o`` of every
input in turn, ``inner_i`` values each (``outer`` = the product of the dims
before the axis, ``inner_i`` = input i's product from the axis on).
"""
import numpy as np
from numba import njit

from .. import program as P
from . import KERNEL, input_slot, put, register

ADD, SUBTRACT, MULTIPLY, AVERAGE, MAXIMUM, MINIMUM = range(6)


@njit(**KERNEL)
def merge_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    """The loops run over slices indexed by ``range`` variables, with the mode chosen outside
    them, so they vectorise (computed indices into ws keep Numba's wraparound test: scalar)."""
    mode, k_in, size = ints[rec[P.IAUX]], rec[P.N_INS], b * rec[P.N_OUT]
    out = ws[b * rec[P.A_POS]:b * rec[P.A_POS] + size]
    pos, _ = input_slot(rec, ints, 0)
    first = ws[b * pos:b * pos + size]
    for j in range(size):
        out[j] = first[j]
    for k in range(1, k_in):
        pos, _ = input_slot(rec, ints, k)
        v = ws[b * pos:b * pos + size]
        if mode == ADD or mode == AVERAGE:
            for j in range(size):
                out[j] += v[j]
        elif mode == SUBTRACT:
            for j in range(size):
                out[j] -= v[j]
        elif mode == MULTIPLY:
            for j in range(size):
                out[j] *= v[j]
        elif mode == MAXIMUM:
            for j in range(size):
                out[j] = max(out[j], v[j])
        else:
            for j in range(size):
                out[j] = min(out[j], v[j])
    if mode == AVERAGE:
        inv = np.float32(1.0) / np.float32(k_in)
        for j in range(size):
            out[j] *= inv


@njit(**KERNEL)
def merge_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    """Add/Average: ga (/ k); Subtract: ga, -ga; Multiply: ga * the product of
    the other inputs; Maximum/Minimum: ga to the first input that attains the
    result (ties to the earlier input, as TensorFlow's chained maximum)."""
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    mode, k_in, size = ints[rec[P.IAUX]], rec[P.N_INS], b * rec[P.N_OUT]
    a = b * rec[P.A_POS]
    inv = np.float32(1.0) / np.float32(k_in)
    for k in range(k_in):
        pos, _ = input_slot(rec, ints, k)
        x = b * pos
        acc = (rec[P.ACC] >> k) & 1 != 0
        if mode == ADD or mode == AVERAGE or mode == SUBTRACT:     # slices: the loop vectorises
            scale = inv if mode == AVERAGE else np.float32(-1.0 if mode == SUBTRACT and k == 1 else 1.0)
            g_out, d = gs[a:a + size], gs[x:x + size]
            for j in range(size):
                d[j] = g_out[j] * scale + d[j] if acc else g_out[j] * scale
            continue
        for j in range(size):
            g = gs[a + j]
            if mode == AVERAGE:
                g = g * inv
            elif mode == SUBTRACT and k == 1:
                g = -g
            elif mode == MULTIPLY:
                for m in range(k_in):
                    if m != k:
                        other, _ = input_slot(rec, ints, m)
                        g = g * ws[b * other + j]
            elif mode == MAXIMUM or mode == MINIMUM:
                first = 0
                for m in range(k_in):
                    other, _ = input_slot(rec, ints, m)
                    if ws[b * other + j] == ws[a + j]:
                        first = m
                        break
                if first != k:
                    g = np.float32(0.0)
            put(gs, x + j, g, acc)


MERGE = register("Merge", merge_forward, merge_backward, shareable=True)


@njit(**KERNEL)
def concatenate_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    k_in, n_out, outer = rec[P.N_INS], rec[P.N_OUT], ints[rec[P.IAUX]]
    a = b * rec[P.A_POS]
    col = 0
    for k in range(k_in):
        pos, size = input_slot(rec, ints, k)
        inner = ints[rec[P.IAUX] + 1 + k]
        x = b * pos
        for r in range(b):
            for o in range(outer):
                src = x + r * size + o * inner
                dst = a + r * n_out + o * (n_out // outer) + col
                piece, out = ws[src:src + inner], ws[dst:dst + inner]
                for j in range(inner):
                    out[j] = piece[j]
        col += inner


@njit(**KERNEL)
def concatenate_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    k_in, n_out, outer = rec[P.N_INS], rec[P.N_OUT], ints[rec[P.IAUX]]
    a = b * rec[P.A_POS]
    col = 0
    for k in range(k_in):
        pos, size = input_slot(rec, ints, k)
        inner = ints[rec[P.IAUX] + 1 + k]
        x = b * pos
        acc = (rec[P.ACC] >> k) & 1 != 0
        for r in range(b):
            for o in range(outer):
                dst = x + r * size + o * inner
                src = a + r * n_out + o * (n_out // outer) + col
                g_out, d = gs[src:src + inner], gs[dst:dst + inner]
                for j in range(inner):
                    d[j] = g_out[j] + d[j] if acc else g_out[j]
        col += inner


CONCATENATE = register("Concatenate", concatenate_forward, concatenate_backward, shareable=True)
