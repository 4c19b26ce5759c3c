"""Optimizer updates over a range of the flat parameter buffer (Keras 3 maths).

``g`` gradient, ``t`` step counted from 1, ``lr`` the step's learning rate,
everything float32. An optimizer's state is the rows of ``slots`` (k, n):

SGD       s0 = m. m = momentum*m - lr*g; w += m (Nesterov: w += momentum*m - lr*g); momentum 0: w -= lr*g
RMSprop   s0 = v, s1 = momentum buffer, s2 = mean gradient a (centered only).
          v = rho*v + (1-rho)*g^2; centered: a = rho*a + (1-rho)*g, d = v - a^2 + eps; else d = v + eps;
          inc = lr*g / sqrt(d); momentum > 0: s1 = momentum*s1 + inc, w -= s1; else w -= inc
Adam      s0 = m, s1 = v, s2 = v_hat (amsgrad only). a = lr*sqrt(1-b2^t)/(1-b1^t);
          m += (g-m)*(1-b1); v += (g^2-v)*(1-b2); amsgrad: v_hat = max(v_hat, v), used for v;
          w -= a*m / (sqrt(v) + eps)
Adagrad   s0 = acc (starts at initial_accumulator_value). acc += g^2; w -= lr*g / sqrt(acc + eps)
Nadam     s0 = m, s1 = v. u_t = b1*(1 - 0.5*0.96^t); P_t = u_1*...*u_t (hp[HP_UPROD]);
          m += (g-m)*(1-b1); v += (g^2-v)*(1-b2);
          m_hat = u_{t+1}*m / (1 - P_t*u_{t+1}) + (1-u_t)*g / (1 - P_t); v_hat = v / (1-b2^t);
          w -= m_hat*lr / (sqrt(v_hat) + eps)
Adamax    s0 = m, s1 = u. m += (g-m)*(1-b1); u = max(b2*u, |g|); w -= lr*m / ((1-b1^t)*(u + eps))
Adadelta  s0 = E[g^2], s1 = E[dx^2]. E[g^2] = rho*E[g^2] + (1-rho)*g^2;
          dx = -sqrt(E[dx^2] + eps)*g / sqrt(E[g^2] + eps); E[dx^2] = rho*E[dx^2] + (1-rho)*dx^2; w += lr*dx
Ftrl      s0 = n (starts at initial_accumulator_value), s1 = z; p = learning_rate_power.
          g' = g + 2*l2_shrinkage*w; n' = n + g^2; z += g' - (n'^-p - n^-p)/lr * w;
          q = n'^-p/lr + 2*(l2 + beta/(2*lr)); w = (clip(z, -l1, l1) - z) / q; n = n'
Lion      s0 = m. w -= lr*sign(b1*m + (1-b1)*g); then m = b2*m + (1-b2)*g (sign(0) = 0)
Weight decay (any optimizer with weight_decay set, before its step): w -= w*wd*lr.

Before each step, ``prepare_step`` (serial, once per step) writes the
scheduled learning rate and Nadam's product into ``hp`` and clips the
gradient (Keras: clipnorm per weight array, global_clipnorm, clipvalue);
clipping is its own pass because a norm needs every entry before any update.

Three things keep the update loops vectorised (measured: Adam over 266k
floats takes 97 us per call instead of 720 us): constants are float32
(``1 - b1`` with a float64 literal would promote the loop to float64); loops
run over zero-based views (a signed ``lo + i`` index needs a wrap-around
check); ``error_model="numpy"`` drops the Python ZeroDivisionError check
that otherwise sits in every division. Branches on options sit outside the
loops.

Each optimizer is its own compiled function (``update_function``), passed to
the training loop as a function pointer: a model compiles only the update
it uses, and the loop compiles once for all of them. Likewise the loop gets
``prepare_nothing`` instead of ``prepare_step`` when a step has nothing to
prepare (``prepare_function``), so schedules and clipping compile only for
the models that use them.
"""
import numpy as np
from numba import njit, prange, types

from .schedules import scheduled_rate
from .pointers import NO_WRAPPERS, Pointer, call, function_pointer
from ..program import (ADADELTA, ADAGRAD, ADAM, ADAMAX, FTRL, LION, HP_1, HP_2, HP_3, HP_4, HP_5, HP_AMSGRAD,
                       HP_CENTERED, HP_CLIPNORM, HP_CLIPVALUE, HP_EPS, HP_GLOBAL_CLIPNORM, HP_LR, HP_NESTEROV,
                       HP_SCHED, HP_UPROD, HP_WD, NADAM, RMSPROP, SCHED_NONE, SGD)

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_TWO = np.float32(2.0)
_NADAM_DECAY = np.float32(0.96)


UPDATE_SIG = types.void(types.float32[::1], types.int64, types.float32[::1], types.float32[::1],
                        types.float32[:, ::1], types.int64, types.int64)
UPDATE_TYPE = Pointer(UPDATE_SIG)
_update = njit(cache=True, fastmath=True, error_model="numpy", no_cfunc_wrapper=True)


@njit(cache=True, inline="always")
def _views(w, g, slots, lo, hi):
    """w[lo:hi], g[lo:hi] and the slot rows' [lo:hi] (s2 aliases s1 when there are two rows)."""
    s2 = slots[2][lo:hi] if slots.shape[0] > 2 else slots[1][lo:hi]
    return w[lo:hi], g[lo:hi], slots[0][lo:hi], slots[1][lo:hi], s2


@njit(cache=True, inline="always")
def _decay_weights(hp, w):
    """Keras's decoupled weight decay, before the step: w -= w*wd*lr."""
    wd, lr = hp[HP_WD], hp[HP_LR]
    if wd != _ZERO:
        for i in range(w.shape[0]):
            w[i] -= w[i] * wd * lr


@_update
def sgd(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    _decay_weights(hp, w)
    lr, h1 = hp[HP_LR], hp[HP_1]
    if h1 == _ZERO:
        for i in range(w.shape[0]):
            w[i] -= lr * g[i]
    elif hp[HP_NESTEROV] != _ZERO:
        for i in range(w.shape[0]):
            m = h1 * s0[i] - lr * g[i]
            s0[i] = m
            w[i] += h1 * m - lr * g[i]
    else:
        for i in range(w.shape[0]):
            m = h1 * s0[i] - lr * g[i]
            s0[i] = m
            w[i] += m


@_update
def rmsprop(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    _decay_weights(hp, w)
    lr, eps, h1, h2 = hp[HP_LR], hp[HP_EPS], hp[HP_1], hp[HP_2]
    one_m_rho = _ONE - h1
    if hp[HP_CENTERED] == _ZERO and h2 == _ZERO:
        for i in range(w.shape[0]):
            v = h1 * s0[i] + one_m_rho * (g[i] * g[i])
            s0[i] = v
            w[i] -= lr * g[i] / np.sqrt(v + eps)
    elif hp[HP_CENTERED] == _ZERO:
        for i in range(w.shape[0]):
            v = h1 * s0[i] + one_m_rho * (g[i] * g[i])
            s0[i] = v
            m = h2 * s1[i] + lr * g[i] / np.sqrt(v + eps)
            s1[i] = m
            w[i] -= m
    elif h2 == _ZERO:
        for i in range(w.shape[0]):
            v = h1 * s0[i] + one_m_rho * (g[i] * g[i])
            a = h1 * s2[i] + one_m_rho * g[i]
            s0[i] = v
            s2[i] = a
            w[i] -= lr * g[i] / np.sqrt(v - a * a + eps)
    else:
        for i in range(w.shape[0]):
            v = h1 * s0[i] + one_m_rho * (g[i] * g[i])
            a = h1 * s2[i] + one_m_rho * g[i]
            s0[i] = v
            s2[i] = a
            m = h2 * s1[i] + lr * g[i] / np.sqrt(v - a * a + eps)
            s1[i] = m
            w[i] -= m


@_update
def adam(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    eps, alpha, one_m_b1, one_m_b2 = _adam_start(hp, step, w)
    for i in range(w.shape[0]):
        m, v = _adam_moments(g, s0, s1, i, one_m_b1, one_m_b2)
        w[i] -= alpha * m / (np.sqrt(v) + eps)


# Its own function, not a branch of adam's: a second vectorised loop is about
# 0.12 s of cold compile that plain Adam, the default, never needs.
@_update
def adam_amsgrad(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    eps, alpha, one_m_b1, one_m_b2 = _adam_start(hp, step, w)
    for i in range(w.shape[0]):
        m, v = _adam_moments(g, s0, s1, i, one_m_b1, one_m_b2)
        v_hat = max(s2[i], v)
        s2[i] = v_hat
        w[i] -= alpha * m / (np.sqrt(v_hat) + eps)


@njit(cache=True, inline="always")
def _adam_start(hp, step, w):
    """Weight decay, then (eps, the step's alpha, 1 - b1, 1 - b2)."""
    _decay_weights(hp, w)
    lr, h1, h2 = hp[HP_LR], hp[HP_1], hp[HP_2]
    t = np.float32(step)
    return hp[HP_EPS], lr * np.sqrt(_ONE - h2 ** t) / (_ONE - h1 ** t), _ONE - h1, _ONE - h2


@njit(cache=True, inline="always")
def _adam_moments(g, s0, s1, i, one_m_b1, one_m_b2):
    """Entry ``i``'s first and second moments after this step, stored in ``s0``, ``s1``."""
    gi = g[i]
    m = s0[i] + (gi - s0[i]) * one_m_b1
    v = s1[i] + (gi * gi - s1[i]) * one_m_b2
    s0[i] = m
    s1[i] = v
    return m, v


@_update
def adagrad(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    _decay_weights(hp, w)
    lr, eps = hp[HP_LR], hp[HP_EPS]
    for i in range(w.shape[0]):
        acc = s0[i] + g[i] * g[i]
        s0[i] = acc
        w[i] -= lr * g[i] / np.sqrt(acc + eps)


@_update
def nadam(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    _decay_weights(hp, w)
    lr, eps, h1, h2 = hp[HP_LR], hp[HP_EPS], hp[HP_1], hp[HP_2]
    t = np.float32(step)
    u_t = h1 * (_ONE - _HALF * _NADAM_DECAY ** t)
    u_next = h1 * (_ONE - _HALF * _NADAM_DECAY ** np.float32(step + 1))
    prod = hp[HP_UPROD]
    prod_next = prod * u_next
    v_scale = _ONE - h2 ** t
    one_m_b1 = _ONE - h1
    one_m_b2 = _ONE - h2
    for i in range(w.shape[0]):
        gi = g[i]
        m = s0[i] + (gi - s0[i]) * one_m_b1
        v = s1[i] + (gi * gi - s1[i]) * one_m_b2
        s0[i] = m
        s1[i] = v
        m_hat = u_next * m / (_ONE - prod_next) + (_ONE - u_t) * gi / (_ONE - prod)
        w[i] -= m_hat * lr / (np.sqrt(v / v_scale) + eps)


@_update
def adamax(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    _decay_weights(hp, w)
    lr, eps, h1, h2 = hp[HP_LR], hp[HP_EPS], hp[HP_1], hp[HP_2]
    bias = _ONE - h1 ** np.float32(step)
    one_m_b1 = _ONE - h1
    for i in range(w.shape[0]):
        gi = g[i]
        m = s0[i] + (gi - s0[i]) * one_m_b1
        u = max(h2 * s1[i], abs(gi))
        s0[i] = m
        s1[i] = u
        w[i] -= lr * m / (bias * (u + eps))


@_update
def adadelta(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    _decay_weights(hp, w)
    lr, eps, h1 = hp[HP_LR], hp[HP_EPS], hp[HP_1]
    one_m_rho = _ONE - h1
    for i in range(w.shape[0]):
        gi = g[i]
        acc_g = h1 * s0[i] + one_m_rho * (gi * gi)
        dx = -(np.sqrt(s1[i] + eps) * gi) / np.sqrt(acc_g + eps)
        s0[i] = acc_g
        s1[i] = h1 * s1[i] + one_m_rho * (dx * dx)
        w[i] += lr * dx


@_update
def ftrl(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    _decay_weights(hp, w)
    lr = hp[HP_LR]
    neg_power = -hp[HP_1]
    l1 = hp[HP_2]
    l2 = hp[HP_3] + hp[HP_5] / (_TWO * lr)
    shrink = _TWO * hp[HP_4]
    if neg_power == _HALF:     # the default: sqrt vectorises, a general power does not (30x slower)
        for i in range(w.shape[0]):
            gi = g[i]
            acc = s0[i]
            new_acc = acc + gi * gi
            new_pow = np.sqrt(new_acc)
            z = s1[i] + ((gi + shrink * w[i]) - (new_pow - np.sqrt(acc)) / lr * w[i])
            s1[i] = z
            s0[i] = new_acc
            w[i] = (min(max(z, -l1), l1) - z) / (new_pow / lr + _TWO * l2)
    else:
        for i in range(w.shape[0]):
            gi = g[i]
            acc = s0[i]
            new_acc = acc + gi * gi
            new_pow = new_acc ** neg_power
            z = s1[i] + ((gi + shrink * w[i]) - (new_pow - acc ** neg_power) / lr * w[i])
            s1[i] = z
            s0[i] = new_acc
            w[i] = (min(max(z, -l1), l1) - z) / (new_pow / lr + _TWO * l2)


@_update
def lion(hp, step, w, g, slots, lo, hi):
    w, g, s0, s1, s2 = _views(w, g, slots, lo, hi)
    _decay_weights(hp, w)
    lr, h1, h2 = hp[HP_LR], hp[HP_1], hp[HP_2]
    one_m_b1, one_m_b2 = _ONE - h1, _ONE - h2
    for i in range(w.shape[0]):
        gi = g[i]
        d = s0[i] * h1 + gi * one_m_b1
        # sign(d) as selects (vectorises; sign(0) = 0 as Keras's ops.sign)
        w[i] -= lr * (_ONE if d > _ZERO else (-_ONE if d < _ZERO else _ZERO))
        s0[i] = s0[i] * h2 + gi * one_m_b2


_UPDATES = {SGD: sgd, RMSPROP: rmsprop, ADAM: adam, ADAGRAD: adagrad, NADAM: nadam, ADAMAX: adamax,
            ADADELTA: adadelta, FTRL: ftrl, LION: lion}


def _update_kernel(opt, hp):
    return adam_amsgrad if opt == ADAM and hp[HP_AMSGRAD] != 0 else _UPDATES[opt]


def update_function(opt, hp):
    """The update of optimizer ``opt`` with parameters ``hp``, compiled (or
    loaded from the cache) on first use: ``f(hp, step, w, g, slots, lo, hi)``
    applies step ``step`` (from 1) to ``w[lo:hi]``; ``hp`` is the float32
    parameter vector (``program.HP_*``), already prepared for this step;
    ``slots`` (k >= 2, len(w)) the state. Compiled loops receive it as a
    function pointer (``UPDATE_TYPE``)."""
    return function_pointer(_update_kernel(opt, hp), UPDATE_SIG)


def update_range(opt, hp, step, w, g, slots, lo, hi):
    """Applies optimizer ``opt`` at step ``step`` to ``w[lo:hi]`` (from Python)."""
    update_function(opt, hp)
    _update_kernel(opt, hp)(hp, step, w, g, slots, lo, hi)


@njit(cache=True, inline="always")
def _nadam_next(prod, b1, step):
    """Nadam's product after step ``step``, multiplied in Keras's order."""
    return prod * b1 * (_ONE - _HALF * _NADAM_DECAY ** np.float32(step))


@njit(cache=True)
def _nadam_product(b1, prod, done, steps):
    """Nadam's product after ``steps`` steps, continuing from ``prod`` after
    ``done`` steps, exactly as ``prepare_step`` leaves it. It underflows to 0
    within some thousands of steps, where the loop stops."""
    for t in range(done + 1, steps + 1):
        if prod == _ZERO:
            break
        prod = _nadam_next(prod, b1, t)
    return prod


# A NaN or infinite norm must stay NaN (Keras makes the scaled gradient NaN),
# so no "nnan"/"ninf" fast-math flags here; reassociation vectorises the sums.
@njit(cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"},
      error_model="numpy", no_cpython_wrapper=True)
def clip_gradients(hp, grads, bounds):
    """Keras's gradient clipping in place on the trainable gradient.

    ``bounds`` (int64, len = weight arrays + 1): weight array ``v`` is
    ``grads[bounds[v]:bounds[v+1]]``. clipnorm scales each array to norm at
    most clipnorm: g * clipnorm / max(norm, clipnorm); global_clipnorm scales
    all by clipnorm * min(1/norm, 1/clipnorm) (NaN if the norm is not
    finite); clipvalue clamps each entry to [-clipvalue, clipvalue].
    """
    clipnorm, global_clipnorm, clipvalue = hp[HP_CLIPNORM], hp[HP_GLOBAL_CLIPNORM], hp[HP_CLIPVALUE]
    n_vars = bounds.shape[0] - 1
    if clipnorm > _ZERO:
        for v in range(n_vars):
            gv = grads[bounds[v]:bounds[v + 1]]
            total = 0.0
            for i in range(gv.shape[0]):
                total += gv[i] * gv[i]
            norm = np.float32(np.sqrt(total))
            if norm > clipnorm:
                for i in range(gv.shape[0]):
                    gv[i] = gv[i] * clipnorm / norm
    elif global_clipnorm > _ZERO:
        gv = grads[bounds[0]:bounds[n_vars]]
        total = 0.0
        for i in range(gv.shape[0]):
            total += gv[i] * gv[i]
        norm = np.float32(np.sqrt(total))
        scale = global_clipnorm * min(_ONE / norm, _ONE / global_clipnorm)
        if not np.isfinite(norm):
            scale = np.float32(np.nan)
        for i in range(gv.shape[0]):
            gv[i] = gv[i] * scale
    elif clipvalue > _ZERO:
        gv = grads[bounds[0]:bounds[n_vars]]
        for i in range(gv.shape[0]):
            gv[i] = min(max(gv[i], -clipvalue), clipvalue)


PREPARE_SIG = types.void(types.int64, types.float32[::1], types.int64, types.float32[::1], types.int64[::1])


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def prepare_step(opt, hp, step, grads, bounds):
    """Once per step, before ``update_range`` of step ``step`` (from 1):
    the scheduled learning rate into hp[HP_LR] (Keras evaluates the schedule
    at the iteration count before the step), Nadam's product into
    hp[HP_UPROD], then gradient clipping when one is set."""
    if hp[HP_SCHED] != SCHED_NONE:
        hp[HP_LR] = scheduled_rate(hp[HP_SCHED:], step - 1)
    if opt == NADAM:
        hp[HP_UPROD] = _nadam_next(hp[HP_UPROD], hp[HP_1], step)
    if hp[HP_CLIPNORM] > _ZERO or hp[HP_GLOBAL_CLIPNORM] > _ZERO or hp[HP_CLIPVALUE] > _ZERO:
        clip_gradients(hp, grads, bounds)


PARALLEL_UPDATE_SIG = types.void(UPDATE_TYPE, types.float32[::1], types.int64, types.float32[::1],
                                 types.float32[::1], types.float32[:, ::1], types.int64, types.int64)


@njit(cache=True, parallel=True, no_cfunc_wrapper=True)
def parallel_update(update, hp, step, w, g, slots, n, n_parts):
    """``update`` (an ``update_function``) over ``w[:n]``, split into
    ``n_parts`` contiguous ranges, one per thread (multiples of 16 floats: no
    shared cache lines). Callers run ``prepare_step`` first. The training
    loop calls it through a pointer (``optimizer_step_functions``): called
    directly, its parallel region would be built again inside the loop."""
    chunk = ((n + n_parts - 1) // n_parts + 15) // 16 * 16
    for t in prange(n_parts):
        lo = min(n, np.int64(t) * chunk)
        hi = min(n, lo + chunk)
        if lo < hi:
            call(update, hp, step, w, g, slots, lo, hi)


def apply_update(opt, hp, step, w, g, slots, n, n_parts):
    """``parallel_update`` of optimizer ``opt`` (from Python)."""
    parallel_update(update_function(opt, hp), hp, step, w, g, slots, n, n_parts)


@njit(cache=True, **NO_WRAPPERS)
def prepare_nothing(opt, hp, step, grads, bounds):
    """``prepare_step`` for a step with nothing to prepare: a fixed learning
    rate, no clipping, not Nadam. Compiles in a fraction of a second."""


@njit(cache=True, **NO_WRAPPERS)
def no_update(hp, step, w, g, slots, lo, hi):
    """Stands in for the update of a run that does not train (never called)."""


@njit(cache=True, **NO_WRAPPERS)
def no_parallel_update(update, hp, step, w, g, slots, n, n_parts):
    """Stands in for ``parallel_update`` in a run that does not train (never
    called): a process that only predicts does not compile a parallel region
    it never runs (0.4 s)."""


def optimizer_step_functions(opt, hp):
    """(``parallel_update``, the update of optimizer ``opt``, its
    ``prepare_function``) as pointers, in the training loop's argument order."""
    return (function_pointer(parallel_update, PARALLEL_UPDATE_SIG), update_function(opt, hp),
            prepare_function(opt, hp))


def idle_optimizer():
    """``optimizer_step_functions`` for a run that does not train: placeholders."""
    return (function_pointer(no_parallel_update, PARALLEL_UPDATE_SIG), function_pointer(no_update, UPDATE_SIG),
            function_pointer(prepare_nothing, PREPARE_SIG))


def _prepare_kernel(opt, hp):
    needed = (hp[HP_SCHED] != SCHED_NONE or opt == NADAM or hp[HP_CLIPNORM] > 0 or hp[HP_GLOBAL_CLIPNORM] > 0
              or hp[HP_CLIPVALUE] > 0)
    return prepare_step if needed else prepare_nothing


def prepare_function(opt, hp):
    """``prepare_step``, or ``prepare_nothing`` when optimizer ``opt`` with
    parameters ``hp`` has no schedule, no clipping and is not Nadam."""
    return function_pointer(_prepare_kernel(opt, hp), PREPARE_SIG)


def step_kernels(opt, hp):
    """(dispatcher, signature) of the update and the step preparation that
    training with optimizer ``opt`` and parameters ``hp`` compiles: what a
    compile worker can build ahead (``Model.compile`` hands them to one)."""
    return [(_update_kernel(opt, hp), UPDATE_SIG), (_prepare_kernel(opt, hp), PREPARE_SIG)]


def nadam_product(b1, prod, done, steps):
    """Nadam's product after ``steps`` steps, continuing from ``prod`` after
    ``done`` steps, exactly as ``prepare_step`` leaves it (float32)."""
    return _nadam_product(np.float32(b1), np.float32(prod), done, steps)
