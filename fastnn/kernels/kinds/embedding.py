"""Embedding: each token id of the input picks a row of the embeddings matrix.

Input: T float32 token ids per sample (the model's data are float32; the
layer checks in Python, before any compiled code runs, that a model input it
reads holds whole numbers in [0, input_dim)). Output: (T, D) per sample,
row ``id`` of the embeddings (V, D) at W_OFF for each id. An id outside [0,
V) (possible only when the ids are computed by earlier layers) gives a zero
row and no gradient, so the kernel never reads or writes outside the matrix.
Integer constants at IAUX: [V, D].

Backward: the embeddings' gradient is zero except the rows of the ids
seen, each the sum of the output gradients of its occurrences (a dense
gradient: Keras 3's optimizers also update every row, decaying the slots of
the rows not seen). The ids get no gradient.
"""
import numpy as np
from numba import njit

from .. import program as P
from . import KERNEL, register

_ZERO = np.float32(0.0)


@njit(cache=True, inline="always")
def _row(v, n_rows):
    """The row an id value selects, or -1 when it is not a whole number in [0, n_rows)."""
    if not (v >= _ZERO and v < np.float32(n_rows)):     # also false for NaN
        return -1
    i = np.int64(v)
    return i if np.float32(i) == v else -1


@njit(**KERNEL)
def embedding_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    v_rows, d = ints[rec[P.IAUX]], ints[rec[P.IAUX] + 1]
    n = b * rec[P.N_IN]
    x, a, w = b * rec[P.X_POS], b * rec[P.A_POS], rec[P.W_OFF]
    for k in range(n):
        i = _row(ws[x + k], v_rows)
        out = ws[a + k * d:a + (k + 1) * d]     # slices indexed by the range variable: vector copies
        if i < 0:
            for j in range(d):
                out[j] = _ZERO
        else:
            vec = params[w + i * d:w + (i + 1) * d]
            for j in range(d):
                out[j] = vec[j]


@njit(**KERNEL)
def embedding_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    flags = rec[P.FLAGS]
    if (flags & P.FROZEN) != 0:
        return
    v_rows, d = ints[rec[P.IAUX]], ints[rec[P.IAUX] + 1]
    n = b * rec[P.N_IN]
    x, a, w = b * rec[P.X_POS], b * rec[P.A_POS], rec[P.W_OFF]
    if (flags & P.W_ACC) == 0:
        for k in range(v_rows * d):
            grads[w + k] = _ZERO
    for k in range(n):
        i = _row(ws[x + k], v_rows)
        if i >= 0:
            dw, g = grads[w + i * d:w + (i + 1) * d], gs[a + k * d:a + (k + 1) * d]   # slices: it vectorises
            for j in range(d):
                dw[j] += g[j]


EMBEDDING = register("Embedding", embedding_forward, embedding_backward, shareable=True, on_cuda=True)
