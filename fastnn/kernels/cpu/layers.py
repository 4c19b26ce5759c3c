"""Every op but Dense, forward and backward, one op at a time (serial).

Dense layers are the bulk of the work and run in the engine's parallel
blocks. The other kinds (Activation, Normalization, Rescaling, Dropout,
LeakyReLU, BatchNormalization) are elementwise or per-column and run here,
behind one function the compiled loops call through a pointer
(``layer_function``): a model made of Dense layers alone gets
``no_layers`` and never compiles this code.

``phase`` is FORWARD (a from x; ``training`` draws dropout masks and uses
batch statistics), BACKWARD (the op's weight gradients into ``grads`` and,
with NEED_DX, gs[X] from gs[A]; ``training`` as the forward pass ran) or
MOVING (after a training forward pass: BatchNormalization's moving
statistics).
"""
import numpy as np
from numba import njit, types

from .activations import SOFTMAX, act_backward, act_forward, softmax_rows, softmax_rows_backward
from .batchnorm import batchnorm_backward, batchnorm_forward, batchnorm_update_moving
from .pointers import NO_WRAPPERS, function_pointer
from ..program import (A_POS, ACT, ACTIVATION, AUX, B_OFF, BATCHNORM, DENSE, DROPOUT, FLAGS, KIND, LEAKY_RELU,
                       N_OUT, NEED_DX, NORMALIZE, RESCALE, W_OFF, X_POS, Z_POS)

FORWARD, BACKWARD, MOVING = range(3)

_F1 = types.float32[::1]
LAYER_SIG = types.void(types.int64, types.int64[::1], _F1, _F1, _F1, _F1, _F1, types.int64, types.boolean)

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_NORM_EPS = np.float32(1e-7)


@njit(cache=True, error_model="numpy", **NO_WRAPPERS)
def _forward(rec, params, consts, ws, b, training):
    kind, n = rec[KIND], rec[N_OUT]
    x, z, a = b * rec[X_POS], b * rec[Z_POS], b * rec[A_POS]
    size = b * n
    if kind == BATCHNORM:
        batchnorm_forward(rec, params, consts, ws, b, training)
    elif kind == ACTIVATION and rec[ACT] == SOFTMAX:
        softmax_rows(ws, x, ws, a, b, n)
    elif kind == ACTIVATION:
        act_forward(rec[ACT], ws[x:x + size], ws[a:a + size])
    elif kind == DROPOUT and training:
        # the mask, scaled by 1/(1-rate), is kept in the Z slot for the backward pass
        rate = consts[rec[AUX]]
        keep_scale = _ONE / (_ONE - rate)
        for k in range(size):
            mk = keep_scale if np.random.random() >= rate else _ZERO
            ws[z + k] = mk
            ws[a + k] = ws[x + k] * mk
    elif kind == DROPOUT:
        for k in range(size):
            ws[a + k] = ws[x + k]
    elif kind == LEAKY_RELU:
        slope = consts[rec[AUX]]
        for k in range(size):
            v = ws[x + k]
            ws[a + k] = v if v > _ZERO else slope * v
    elif kind == NORMALIZE:
        mean, var = rec[W_OFF], rec[B_OFF]
        for r in range(b):
            for j in range(n):
                k = r * n + j
                ws[a + k] = (ws[x + k] - params[mean + j]) / max(np.sqrt(params[var + j]), _NORM_EPS)
    elif kind == RESCALE:
        scale, offset = consts[rec[AUX]], consts[rec[AUX] + 1]
        for k in range(size):
            ws[a + k] = ws[x + k] * scale + offset


@njit(cache=True, error_model="numpy", **NO_WRAPPERS)
def _backward(rec, params, consts, grads, ws, gs, b, training):
    kind, n = rec[KIND], rec[N_OUT]
    if kind == BATCHNORM:
        batchnorm_backward(rec, params, grads, ws, gs, b, training)
        return
    if (rec[FLAGS] & NEED_DX) == 0:
        return
    x, z, a = b * rec[X_POS], b * rec[Z_POS], b * rec[A_POS]
    size = b * n
    if kind == ACTIVATION and rec[ACT] == SOFTMAX:
        softmax_rows_backward(ws, gs, a, gs, z, b, n)
    elif kind == ACTIVATION:
        act_backward(rec[ACT], ws[z:z + size], ws[a:a + size], gs[a:a + size], gs[z:z + size])
    else:
        for r in range(b):
            for j in range(n):
                k = r * n + j
                gk = gs[a + k]
                if kind == NORMALIZE:
                    gk = gk / max(np.sqrt(params[rec[B_OFF] + j]), _NORM_EPS)
                elif kind == RESCALE:
                    gk = gk * consts[rec[AUX]]
                elif kind == DROPOUT:
                    if training:
                        gk = gk * ws[z + k]
                elif kind == LEAKY_RELU:
                    if ws[x + k] <= _ZERO:
                        gk = gk * consts[rec[AUX]]
                gs[x + k] = gk


@njit(cache=True, **NO_WRAPPERS)
def other_layers(phase, rec, params, consts, grads, ws, gs, b, training):
    """``phase`` of op ``rec`` (any kind but Dense) on the ``b`` rows in ``ws``/``gs``."""
    if phase == FORWARD:
        _forward(rec, params, consts, ws, b, training)
    elif phase == BACKWARD:
        _backward(rec, params, consts, grads, ws, gs, b, training)
    elif rec[KIND] == BATCHNORM:
        batchnorm_update_moving(rec, params, consts, ws, b)


@njit(cache=True, **NO_WRAPPERS)
def no_layers(phase, rec, params, consts, grads, ws, gs, b, training):
    """Stands in for ``other_layers`` in programs made of Dense ops alone (never called)."""


def layer_function(prog):
    """The pointer to ``other_layers``, or to ``no_layers`` when every op of ``prog`` is Dense."""
    only_dense = bool(np.all(prog[:, KIND] == DENSE))
    return function_pointer(no_layers if only_dense else other_layers, LAYER_SIG)

