"""Embedding on the device, with the maths of ``kinds.embedding`` (its docstring): each token id
picks a row of the ``V x D`` matrix; an id that is not a whole number in [0, V) gives a zero row
and no gradient (the CPU's own ``_row`` decides, compiled for the device).

Backward: the matrix's gradient is zeroed (one thread per value), then one thread per column
adds the output gradients of the batch's tokens in order: the CPU's sums, with no atomics.
"""
import numpy as np
from numba import cuda

from ..kinds import embedding as E
from ..program import A_POS, FLAGS, FROZEN, IAUX, N_IN, W_OFF, X_POS
from .kinds import register
from .launch import device_function, planned

_ZERO = np.float32(0.0)
_row = device_function(E._row)


@cuda.jit(cache=True)
def embedding_forward(v_rows, d, ws, x, a, params, w, tokens):
    """ws[a:] (``tokens x d``) = the rows of the ids at ws[x:x + tokens]."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, tokens * d, stride):
        i = _row(ws[x + e // d], v_rows)
        ws[a + e] = params[w + i * d + e % d] if i >= 0 else _ZERO


@cuda.jit(cache=True)
def zero(dst, off, count):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, count, stride):
        dst[off + e] = _ZERO


@cuda.jit(cache=True)
def embedding_backward(v_rows, d, ws, gs, x, a, grads, w, tokens):
    """grads[w:] += each token's output gradient into its id's row; one thread per column."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for j in range(start, d, stride):
        for k in range(tokens):
            i = _row(ws[x + k], v_rows)
            if i >= 0:
                grads[w + i * d + j] += gs[a + k * d + j]


def _op(session, i, b):
    rec = session.prog[i]
    v_rows, d = (int(v) for v in session.ints_host[int(rec[IAUX]):][:2])
    return v_rows, d, b * int(rec[X_POS]), b * int(rec[A_POS]), int(rec[W_OFF]), b * int(rec[N_IN])


def forward(session, i, b, training):
    v_rows, d, x, a, w, tokens = _op(session, i, b)
    return [planned(embedding_forward, tokens * d, v_rows, d, session.ws, x, a, session.params, w, tokens)]


def backward(session, i, b, training):
    if int(session.prog[i][FLAGS]) & FROZEN:
        return []           # the ids get no gradient
    v_rows, d, x, a, w, tokens = _op(session, i, b)
    return [planned(zero, v_rows * d, session.grads, w, v_rows * d),
            planned(embedding_backward, d, v_rows, d, session.ws, session.gs, x, a, session.grads, w, tokens)]


register(E.EMBEDDING, forward, backward)
