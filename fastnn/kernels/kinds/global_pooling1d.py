"""GlobalAveragePooling1D and GlobalMaxPooling1D over the steps of a sequence.

Input (T, C) per sample, output (C,): the mean or the maximum over the T
steps of each channel. Integer constants at IAUX: [T, C, mode] (mode 0
average, 1 maximum). An average op with a second input reads it as a
mask (one value per step, 0: masked; an ``Embedding(mask_zero=True)``'s
``ids != 0``) and averages over the unmasked steps only, as Keras does:
``sum(x * mask) / sum(mask)``, which is NaN (0 / 0) for a sequence with
every step masked, as in Keras.

Backward: average: g / count to every (unmasked) step; maximum: g shared
equally among the steps that attain the maximum (TensorFlow's gradient of
``reduce_max``).
"""
import numpy as np
from numba import njit

from .. import program as P
from . import KERNEL, input_slot, put, register

AVERAGE, MAXIMUM = 0, 1
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


@njit(cache=True, inline="always")
def _count(ws, ids, has_mask, r, t):
    """Unmasked steps of row r."""
    if not has_mask:
        return np.float32(t)
    n = _ZERO
    for s in range(t):
        if ws[ids + r * t + s] != _ZERO:
            n += _ONE
    return n


@njit(**KERNEL)
def pooling1d_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    t, c, mode = ints[rec[P.IAUX]], ints[rec[P.IAUX] + 1], ints[rec[P.IAUX] + 2]
    x, a = b * rec[P.X_POS], b * rec[P.A_POS]
    has_mask = rec[P.N_INS] > 1
    ids = 0
    if has_mask:
        pos, _ = input_slot(rec, ints, 1)
        ids = b * pos
    for r in range(b):
        # slices indexed by the range variable, not computed indices: the loops vectorise
        out = ws[a + r * c:a + (r + 1) * c]
        if mode == MAXIMUM:
            first = ws[x + r * t * c:x + r * t * c + c]
            for j in range(c):
                out[j] = first[j]
            for s in range(1, t):
                row = ws[x + (r * t + s) * c:x + (r * t + s + 1) * c]
                for j in range(c):
                    out[j] = max(out[j], row[j])
        else:
            for j in range(c):
                out[j] = _ZERO
            for s in range(t):
                if has_mask and ws[ids + r * t + s] == _ZERO:
                    continue
                row = ws[x + (r * t + s) * c:x + (r * t + s + 1) * c]
                for j in range(c):
                    out[j] += row[j]
            n = _count(ws, ids, has_mask, r, t)
            for j in range(c):
                out[j] = out[j] / n


@njit(**KERNEL)
def pooling1d_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    if (rec[P.FLAGS] & P.NEED_DX) == 0:
        return
    t, c, mode = ints[rec[P.IAUX]], ints[rec[P.IAUX] + 1], ints[rec[P.IAUX] + 2]
    x, a = b * rec[P.X_POS], b * rec[P.A_POS]
    acc = (rec[P.ACC] & 1) != 0
    has_mask = rec[P.N_INS] > 1
    ids = 0
    if has_mask:
        pos, _ = input_slot(rec, ints, 1)
        ids = b * pos
    for r in range(b):
        out = a + r * c
        if mode == MAXIMUM:
            for j in range(c):
                m = ws[out + j]
                ties = _ZERO
                for s in range(t):
                    if ws[x + (r * t + s) * c + j] == m:
                        ties += _ONE
                g = gs[out + j] / ties
                for s in range(t):
                    i = x + (r * t + s) * c + j
                    put(gs, i, g if ws[i] == m else _ZERO, acc)
        else:
            n = _count(ws, ids, has_mask, r, t)
            g_out = gs[out:out + c]
            for s in range(t):
                masked = has_mask and ws[ids + r * t + s] == _ZERO
                d = gs[x + (r * t + s) * c:x + (r * t + s + 1) * c]
                for j in range(c):
                    v = _ZERO if masked else g_out[j] / n
                    d[j] = d[j] + v if acc else v


def _cuda_refusal(rec, ints):
    """The device kernels (``cuda/pooling.py``) read no mask."""
    return "GlobalPooling1D over a masked sequence" if rec[P.N_INS] > 1 else None


POOLING1D = register("GlobalPooling1D", pooling1d_forward, pooling1d_backward, shareable=True, on_cuda=True,
                     cuda_refusal=_cuda_refusal)
