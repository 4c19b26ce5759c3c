"""Every optimizer's update as one kernel over the flat parameter buffer.

The maths of ``fastnn.kernels.cpu.optimizers`` (Keras 3), element by element,
all in float32 (``g`` gradient, ``t`` step from 1):

SGD      m = momentum*m - lr*g; w += m (Nesterov: w += momentum*m - lr*g); momentum 0: w -= lr*g
RMSprop  v = rho*v + (1-rho)*g^2; w -= lr*g / sqrt(v + eps)
Adam     a = lr*sqrt(1-b2^t)/(1-b1^t); m += (g-m)*(1-b1); v += (g^2-v)*(1-b2); w -= a*m/(sqrt(v)+eps)
Adagrad  acc += g^2; w -= lr*g / sqrt(acc + eps)
"""
import math

import numpy as np
from numba import cuda

from ..program import ADAGRAD, ADAM, HP_1, HP_2, HP_EPS, HP_LR, HP_NESTEROV, RMSPROP, SGD

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@cuda.jit(cache=True)
def apply_update(opt, hp, step, w, g, s1, s2, n):
    """Optimizer ``opt`` at step ``step`` (from 1) on ``w[:n]``.

    ``hp``: the float32 hyper-parameter vector (``program.HP_*``); ``s1``,
    ``s2``: the optimizer's slot buffers (at least ``n`` long)."""
    lr = hp[HP_LR]
    eps = hp[HP_EPS]
    h1 = hp[HP_1]
    h2 = hp[HP_2]
    nesterov = hp[HP_NESTEROV] != _ZERO
    alpha = lr
    if opt == ADAM:
        t = np.float32(step)
        alpha = lr * math.sqrt(_ONE - h2 ** t) / (_ONE - h1 ** t)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, n, stride):
        gi = g[i]
        if opt == SGD:
            if h1 == _ZERO:
                w[i] -= lr * gi
            else:
                m = h1 * s1[i] - lr * gi
                s1[i] = m
                if nesterov:
                    w[i] += h1 * m - lr * gi
                else:
                    w[i] += m
        elif opt == RMSPROP:
            v = h1 * s1[i] + (_ONE - h1) * gi * gi
            s1[i] = v
            w[i] -= lr * gi / math.sqrt(v + eps)
        elif opt == ADAM:
            m = s1[i] + (gi - s1[i]) * (_ONE - h1)
            v = s2[i] + (gi * gi - s2[i]) * (_ONE - h2)
            s1[i] = m
            s2[i] = v
            w[i] -= alpha * m / (math.sqrt(v) + eps)
        elif opt == ADAGRAD:
            acc = s1[i] + gi * gi
            s1[i] = acc
            w[i] -= lr * gi / math.sqrt(acc + eps)
