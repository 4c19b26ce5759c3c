"""Learning-rate schedules evaluated inside compiled code (Keras 3 maths, float32).

A schedule is a float32 vector ``sv`` (the tail of the optimizer's ``hp`` from
``program.HP_SCHED``): its code, then its numbers. ``s`` is the optimizer's
iteration count before the update (0 for the first step), as Keras passes it,
converted to float32 as Keras does.

SCHED_EXPONENTIAL   [code, initial, decay_steps, decay_rate, staircase]
                    p = s / decay_steps (floored if staircase); lr = initial * decay_rate ** p
SCHED_INVERSE_TIME  [code, initial, decay_steps, decay_rate, staircase]
                    lr = initial / (1 + decay_rate * p)
SCHED_COSINE        [code, initial, decay_steps, alpha, 1 - alpha, has_warmup, warmup_target, warmup_steps]
                    decay(s, from) = from * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)
                    no warmup: decay(min(s, decay_steps), initial); with warmup, s = min(s, decay_steps +
                    warmup_steps): s < warmup_steps gives (warmup_target - initial) * s / warmup_steps + initial,
                    else decay(s - warmup_steps, warmup_target)
SCHED_PIECEWISE     [code, n, b_0 .. b_{n-1}, v_0 .. v_n]
                    v_0 for step <= b_0, v_i for b_{i-1} < step <= b_i, v_n for step > b_{n-1}
                    (the integer step against the boundaries, not its float32 rounding)

``1 - alpha`` is stored because Keras computes it in double precision.
"""
import math

import numpy as np
from numba import njit

from ..program import SCHED_COSINE, SCHED_EXPONENTIAL, SCHED_INVERSE_TIME, SCHED_PIECEWISE

_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_PI = np.float32(math.pi)


@njit(cache=True, inline="always")
def _cosine(s, decay_steps, start, alpha, one_m_alpha):
    cosine = _HALF * (_ONE + np.cos(_PI * (s / decay_steps)))
    return start * (one_m_alpha * cosine + alpha)


@njit(cache=True, error_model="numpy")
def scheduled_rate(sv, step):
    """Learning rate of schedule ``sv`` at iteration ``step`` (from 0)."""
    code = int(sv[0])
    s = np.float32(step)
    if code == SCHED_PIECEWISE:
        n = int(sv[1])
        i = 0
        while i < n and np.float64(step) > np.float64(sv[2 + i]):
            i += 1
        return sv[2 + n + i]
    initial, decay_steps = sv[1], sv[2]
    if code == SCHED_EXPONENTIAL or code == SCHED_INVERSE_TIME:
        p = s / decay_steps
        if sv[4] != 0:
            p = np.floor(p)
        if code == SCHED_EXPONENTIAL:
            return initial * sv[3] ** p
        return initial / (_ONE + sv[3] * p)
    if code == SCHED_COSINE:
        alpha, one_m_alpha = sv[3], sv[4]
        if sv[5] == 0:
            return _cosine(min(s, decay_steps), decay_steps, initial, alpha, one_m_alpha)
        target, warmup_steps = sv[6], sv[7]
        s = min(s, decay_steps + warmup_steps)
        if s < warmup_steps:
            return (target - initial) * (s / warmup_steps) + initial
        return _cosine(s - warmup_steps, decay_steps, target, alpha, one_m_alpha)
    return np.float32(np.nan)
