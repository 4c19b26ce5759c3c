"""Every optimizer's update on the device, with the CPU's maths.

The formulas (SGD with momentum / Nesterov, RMSprop plain, with momentum or
centered, Adam and AMSGrad, Adagrad, Nadam, Adamax, Adadelta, Ftrl, Lion; weight
decay) are the per-optimizer functions of ``fastnn.kernels.cpu.optimizers``,
where they are written out: ``apply_update`` runs those very functions,
compiled for the GPU, on one parameter per thread. What ``cpu.optimizers.prepare_step`` does once
per step is split by what it needs:

- the scheduled learning rate (``cpu.schedules.scheduled_rate``) and Nadam's
  running product: scalars, written into the device ``hp`` by ``prepare_step``
  (one block) before the update;
- clipnorm / global_clipnorm need the norm of whole gradients before any
  update: ``prepare_step`` reduces them in its block and leaves in ``clip``
  each weight array's norm (clipnorm) or the global scale (global_clipnorm),
  which ``apply_update`` applies as it reads the gradient;
- clipvalue is per entry: ``apply_update`` clamps.

Clipping follows ``cpu.optimizers.clip_gradients``: clipnorm scales an array
by ``clipnorm / norm`` when its norm exceeds clipnorm; global_clipnorm
scales everything by ``clipnorm * min(1 / norm, 1 / clipnorm)`` (NaN when
the norm is not finite); clipvalue clamps to [-clipvalue, clipvalue]. Norms
are float64 sums of float32 squares, as on the CPU.
"""
import math

import numpy as np
from numba import cuda, float64

from ..cpu import optimizers as _cpu_opt
from ..cpu import schedules as _cpu_sched
from ..program import (ADADELTA, ADAGRAD, ADAM, ADAMAX, FTRL, LION, HP_1, HP_AMSGRAD, HP_CLIPNORM, HP_CLIPVALUE,
                       HP_GLOBAL_CLIPNORM, HP_LR, HP_SCHED, HP_UPROD, NADAM, RMSPROP, SCHED_NONE, SGD)
from .elementwise import block_sum
from .launch import SIMULATOR, device_function

# The CPU's functions, run by the kernels (see ``launch.device_function``).
sgd, rmsprop, adam, adam_amsgrad, adagrad, nadam, adamax, adadelta, ftrl, lion = (
    device_function(f) for f in (_cpu_opt.sgd, _cpu_opt.rmsprop, _cpu_opt.adam, _cpu_opt.adam_amsgrad,
                                 _cpu_opt.adagrad, _cpu_opt.nadam, _cpu_opt.adamax, _cpu_opt.adadelta, _cpu_opt.ftrl,
                                 _cpu_opt.lion))
scheduled_rate = device_function(_cpu_sched.scheduled_rate)
nadam_next = device_function(_cpu_opt._nadam_next)

# Threads of the one block of ``prepare_step`` (its shared reduction buffer is this long).
REDUCE_THREADS = 32 if SIMULATOR else 256
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


def needs_prepare(opt, hp):
    """True when a step of optimizer ``opt`` with parameters ``hp`` (host
    float32) needs ``prepare_step`` before ``apply_update``."""
    return hp[HP_SCHED] != SCHED_NONE or opt == NADAM or hp[HP_CLIPNORM] > 0 or hp[HP_GLOBAL_CLIPNORM] > 0


@cuda.jit(cache=True)
def prepare_step(opt, hp, step, g, bounds, clip):
    """Once per step, before ``apply_update`` of step ``step`` (from 1); one
    block of ``REDUCE_THREADS`` threads.

    Writes the scheduled rate into ``hp[HP_LR]`` (at the iteration count
    before the step, as Keras), advances Nadam's product in
    ``hp[HP_UPROD]``, and for clipping by norm fills ``clip`` (float32, one
    per weight array, ``bounds`` as ``cpu.optimizers.clip_gradients``)."""
    tid = cuda.threadIdx.x
    if tid == 0:
        if hp[HP_SCHED] != SCHED_NONE:
            hp[HP_LR] = scheduled_rate(hp[HP_SCHED:], step - 1)
        if opt == NADAM:
            hp[HP_UPROD] = nadam_next(hp[HP_UPROD], hp[HP_1], step)
    clipnorm, global_clipnorm = hp[HP_CLIPNORM], hp[HP_GLOBAL_CLIPNORM]
    if clipnorm <= _ZERO and global_clipnorm <= _ZERO:
        return
    partial = cuda.shared.array(REDUCE_THREADS, float64)
    n_vars = bounds.shape[0] - 1
    n_ranges = n_vars if clipnorm > _ZERO else 1
    for v in range(n_ranges):
        lo, hi = (bounds[v], bounds[v + 1]) if clipnorm > _ZERO else (bounds[0], bounds[n_vars])
        total = 0.0
        for i in range(lo + tid, hi, REDUCE_THREADS):
            total += g[i] * g[i]
        partial[tid] = total
        block_sum(partial, tid, REDUCE_THREADS)
        if tid == 0:
            norm = np.float32(math.sqrt(partial[0]))
            if clipnorm > _ZERO:
                clip[v] = norm
            else:
                scale = global_clipnorm * min(_ONE / norm, _ONE / global_clipnorm)
                clip[0] = scale if math.isfinite(norm) else np.float32(np.nan)
        cuda.syncthreads()


@cuda.jit(cache=True)
def apply_update(opt, hp, step, w, g, slots, n, bounds, clip):
    """Optimizer ``opt`` at step ``step`` (from 1) on ``w[:n]``, one
    parameter per thread, after clipping the gradient entry (``clip`` from
    ``prepare_step``). ``hp``: the float32 parameter vector (``program.HP_*``,
    prepared for this step); ``slots``: the optimizer's (k, n) state."""
    clipnorm, global_clipnorm, clipvalue = hp[HP_CLIPNORM], hp[HP_GLOBAL_CLIPNORM], hp[HP_CLIPVALUE]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    v = 0
    for i in range(start, n, stride):
        if clipnorm > _ZERO:
            while bounds[v + 1] <= i:      # i only grows in this loop, so v only moves forward
                v += 1
            norm = clip[v]
            if norm > clipnorm:
                g[i] = g[i] * clipnorm / norm
        elif global_clipnorm > _ZERO:
            g[i] = g[i] * clip[0]
        elif clipvalue > _ZERO:
            g[i] = min(max(g[i], -clipvalue), clipvalue)
        if opt == SGD:
            sgd(hp, step, w, g, slots, i, i + 1)
        elif opt == RMSPROP:
            rmsprop(hp, step, w, g, slots, i, i + 1)
        elif opt == ADAM and hp[HP_AMSGRAD] == _ZERO:
            adam(hp, step, w, g, slots, i, i + 1)
        elif opt == ADAM:
            adam_amsgrad(hp, step, w, g, slots, i, i + 1)
        elif opt == ADAGRAD:
            adagrad(hp, step, w, g, slots, i, i + 1)
        elif opt == NADAM:
            nadam(hp, step, w, g, slots, i, i + 1)
        elif opt == ADAMAX:
            adamax(hp, step, w, g, slots, i, i + 1)
        elif opt == ADADELTA:
            adadelta(hp, step, w, g, slots, i, i + 1)
        elif opt == FTRL:
            ftrl(hp, step, w, g, slots, i, i + 1)
        elif opt == LION:
            lion(hp, step, w, g, slots, i, i + 1)
