"""Nadam, Adamax, AdamW, Adadelta, Ftrl, Adam's amsgrad, RMSprop's momentum and
centered, weight decay, gradient clipping and learning-rate schedules, against
Keras 3's formulas written out in NumPy float32 below (each cites its Keras
source file).

Keras applies, per step: clip the gradients (base_optimizer.py
``_clip_gradients``), decay the weights (``_apply_weight_decay``:
``w = w - w * wd * lr``), then the optimizer's ``update_step``; a schedule is
evaluated at the iteration count before the step.

Tolerance (as in test_optimizers.py): a step is a handful of float32
operations per entry that the compiled kernel may reorder or fuse, so after K
steps entries may differ from the reference by K * 2^-20 of |w0| plus the
sum of |updates|. Each option is also checked to move the weights far more
than that, so a kernel that ignored it would fail.
"""
import math

import numpy as np
import pytest

import fastnn as keras
from fastnn.kernels.cpu.optimizers import prepare_step, update_range
from fastnn.optimizers import schedules

F = np.float32
N = 37                      # two weight arrays, [0, 20) and [20, 37): not multiples of 16
BOUNDS = np.array([0, 20, N], dtype=np.int64)
STEPS = 6


def _gradients(steps=STEPS, n=N, seed=0):
    """Gradients with magnitudes log-uniform in [1e-4, 1] and random signs."""
    rng = np.random.default_rng(seed)
    return (10.0 ** rng.uniform(-4, 0, (steps, n)) * rng.choice([-1.0, 1.0], (steps, n))).astype(F)


# -- Keras 3's update rules in NumPy float32 ------------------------------------------------

def _clip(cfg, g, bounds):
    """keras/src/optimizers/base_optimizer.py: _clip_gradients, _clip_by_norm, clip_by_global_norm."""
    if cfg.get("clipnorm"):
        c = F(cfg["clipnorm"])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            norm = np.sqrt(np.sum(g[lo:hi] * g[lo:hi]))
            g[lo:hi] = g[lo:hi] * c / max(norm, c)
    elif cfg.get("global_clipnorm"):
        c = F(cfg["global_clipnorm"])
        norm = np.sqrt(np.sum(g * g))
        g *= c * min(F(1) / norm, F(1) / c)
    elif cfg.get("clipvalue"):
        v = F(cfg["clipvalue"])
        np.clip(g, -v, v, out=g)


def keras_step(kind, cfg, t, lr, w, g, s):
    """One update_step of optimizer ``kind`` at step t (from 1), in place on w and the slot dict s."""
    if kind == "SGD":                                    # keras/src/optimizers/sgd.py
        mom = F(cfg.get("momentum", 0.0))
        if mom == 0:
            w -= g * lr
        else:
            s["m"] = s["m"] * mom - g * lr
            w += s["m"] * mom - g * lr if cfg.get("nesterov") else s["m"]
    elif kind == "RMSprop":                              # keras/src/optimizers/rmsprop.py
        rho, mom, eps = F(cfg.get("rho", 0.9)), F(cfg.get("momentum", 0.0)), F(cfg.get("epsilon", 1e-7))
        s["v"] = rho * s["v"] + F(1 - cfg.get("rho", 0.9)) * (g * g)
        if cfg.get("centered"):
            s["a"] = rho * s["a"] + F(1 - cfg.get("rho", 0.9)) * g
            denominator = s["v"] - s["a"] * s["a"] + eps
        else:
            denominator = s["v"] + eps
        increment = lr * g / np.sqrt(denominator)
        if mom > 0:
            s["m"] = mom * s["m"] + increment
            w -= s["m"]
        else:
            w -= increment
    elif kind in ("Adam", "AdamW"):                      # keras/src/optimizers/adam.py (AdamW: adamw.py)
        b1, b2 = cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999)
        alpha = lr * np.sqrt(F(1) - F(b2) ** F(t)) / (F(1) - F(b1) ** F(t))
        s["m"] += (g - s["m"]) * F(1 - b1)
        s["v"] += (g * g - s["v"]) * F(1 - b2)
        v = s["v"]
        if cfg.get("amsgrad"):
            s["vhat"] = np.maximum(s["vhat"], s["v"])
            v = s["vhat"]
        w -= s["m"] * alpha / (np.sqrt(v) + F(cfg.get("epsilon", 1e-7)))
    elif kind == "Nadam":                                # keras/src/optimizers/nadam.py
        b1, b2 = F(cfg.get("beta_1", 0.9)), F(cfg.get("beta_2", 0.999))
        s["u_product"] = s["u_product"] * b1 * (F(1) - F(0.5) * F(0.96) ** F(t))   # _backend_update_step
        u_t = b1 * (F(1) - F(0.5) * F(0.96) ** F(t))
        u_t_1 = b1 * (F(1) - F(0.5) * F(0.96) ** F(t + 1))
        u_product_t_1 = s["u_product"] * u_t_1
        s["m"] += (g - s["m"]) * (F(1) - b1)
        s["v"] += (g * g - s["v"]) * (F(1) - b2)
        m_hat = u_t_1 * s["m"] / (F(1) - u_product_t_1) + (F(1) - u_t) * g / (F(1) - s["u_product"])
        v_hat = s["v"] / (F(1) - b2 ** F(t))
        w -= m_hat * lr / (np.sqrt(v_hat) + F(cfg.get("epsilon", 1e-7)))
    elif kind == "Adamax":                               # keras/src/optimizers/adamax.py
        b1, b2 = cfg.get("beta_1", 0.9), F(cfg.get("beta_2", 0.999))
        s["m"] += (g - s["m"]) * F(1 - b1)
        s["u"] = np.maximum(b2 * s["u"], np.abs(g))
        w -= lr * s["m"] / ((F(1) - F(b1) ** F(t)) * (s["u"] + F(cfg.get("epsilon", 1e-7))))
    elif kind == "Adagrad":                              # keras/src/optimizers/adagrad.py
        s["acc"] += g * g
        w -= lr * g / np.sqrt(s["acc"] + F(cfg.get("epsilon", 1e-7)))
    elif kind == "Adadelta":                             # keras/src/optimizers/adadelta.py
        rho, eps = cfg.get("rho", 0.95), F(cfg.get("epsilon", 1e-7))
        s["acc_g"] = F(rho) * s["acc_g"] + F(1 - rho) * (g * g)
        delta = -(np.sqrt(s["acc_dx"] + eps) * g / np.sqrt(s["acc_g"] + eps))
        s["acc_dx"] = F(rho) * s["acc_dx"] + F(1 - rho) * (delta * delta)
        w += lr * delta
    elif kind == "Lion":                                 # keras/src/optimizers/lion.py
        b1, b2 = F(cfg.get("beta_1", 0.9)), F(cfg.get("beta_2", 0.99))
        w -= lr * np.sign(s["m"] * b1 + g * (F(1) - b1))
        s["m"] = s["m"] * b2 + g * (F(1) - b2)
    elif kind == "Ftrl":                                 # keras/src/optimizers/ftrl.py
        power = F(-cfg.get("learning_rate_power", -0.5))
        l1 = F(cfg.get("l1_regularization_strength", 0.0))
        l2 = F(cfg.get("l2_regularization_strength", 0.0)) + F(cfg.get("beta", 0.0)) / (F(2) * lr)
        g_shrunk = g + F(2 * cfg.get("l2_shrinkage_regularization_strength", 0.0)) * w
        new_acc = s["acc"] + g * g
        s["z"] += g_shrunk - (new_acc ** power - s["acc"] ** power) / lr * w
        quadratic = new_acc ** power / lr + F(2) * l2
        w[:] = (np.clip(s["z"], -l1, l1) - s["z"]) / quadratic
        s["acc"] = new_acc
    else:
        raise AssertionError(kind)


def _initial_state(kind, cfg, n):
    zeros = np.zeros(n, F)
    state = {k: zeros.copy() for k in ("m", "v", "a", "vhat", "u", "acc_g", "acc_dx", "z")}
    state["acc"] = np.full(n, F(cfg.get("initial_accumulator_value", 0.1)))
    state["u_product"] = F(1)
    return state


def reference(kind, cfg, w0, grads, bounds=BOUNDS, lr_at=None):
    """Keras's apply(): clip, weight decay, update, for every gradient in ``grads``.
    Returns the weights and the elementwise tolerance bound."""
    w, s = w0.copy(), _initial_state(kind, cfg, w0.size)
    moved = np.zeros(w0.size)
    default_lr = {"SGD": 0.01, "AdamW": 0.001}.get(kind, 0.001)
    wd = cfg.get("weight_decay", 0.004 if kind == "AdamW" else None)
    for t, g in enumerate(grads, start=1):
        lr = F(lr_at(t - 1) if lr_at else cfg.get("learning_rate", default_lr))
        before = w.copy()
        g = g.copy()
        _clip(cfg, g, bounds)
        if wd is not None:
            w -= w * F(wd) * lr
        keras_step(kind, cfg, t, lr, w, g, s)
        moved += np.abs(w.astype(np.float64) - before)
    return w, len(grads) * 2.0 ** -20 * (np.abs(w0) + moved)


def run_kernel(opt, w0, grads, bounds=BOUNDS):
    """The compiled path fit takes in one chunk: one parameter vector, then
    prepare_step and update_range for each step."""
    opt.build(w0.size)
    w = w0.copy()
    hp = opt.hyper()
    for g in grads:
        opt.iterations += 1
        g = g.copy()
        prepare_step(opt.code, hp, opt.iterations, g, bounds)
        update_range(opt.code, hp, opt.iterations, w, g, opt.slots, 0, w.size)
    return w


CASES = [   # (optimizer class name, config, the config it must differ from, or None)
    ("Nadam", {}, None),
    ("Nadam", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6}, None),
    ("Adamax", {}, None),
    ("Adamax", {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.9}, None),
    ("AdamW", {}, None),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1}, ("Adam", {"learning_rate": 0.05})),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1, "beta_2": 0.5, "amsgrad": True},
     ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1, "beta_2": 0.5})),
    ("Adadelta", {}, None),
    ("Adadelta", {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6}, None),
    ("Ftrl", {}, None),
    ("Ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, "initial_accumulator_value": 0.2,
              "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02,
              "l2_shrinkage_regularization_strength": 0.03, "beta": 0.5}, ("Ftrl", {"learning_rate": 0.1})),
    ("Adam", {"amsgrad": True, "learning_rate": 0.01, "beta_2": 0.5}, ("Adam", {"learning_rate": 0.01,
                                                                                 "beta_2": 0.5})),
    ("RMSprop", {"momentum": 0.9}, ("RMSprop", {})),
    ("RMSprop", {"centered": True}, ("RMSprop", {})),
    ("RMSprop", {"centered": True, "momentum": 0.5, "learning_rate": 0.01}, ("RMSprop", {"centered": True,
                                                                                         "learning_rate": 0.01})),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.05}, ("SGD", {"learning_rate": 0.1})),
    ("Adagrad", {"learning_rate": 0.1, "weight_decay": 0.05}, ("Adagrad", {"learning_rate": 0.1})),
    ("SGD", {"learning_rate": 0.5, "clipnorm": 0.3}, ("SGD", {"learning_rate": 0.5})),
    ("SGD", {"learning_rate": 0.5, "momentum": 0.9, "clipvalue": 0.05}, ("SGD", {"learning_rate": 0.5,
                                                                                 "momentum": 0.9})),
    ("Adam", {"global_clipnorm": 0.5}, ("Adam", {})),
    ("SGD", {"learning_rate": 0.5, "global_clipnorm": 0.8}, ("SGD", {"learning_rate": 0.5, "clipnorm": 0.8})),
    ("Lion", {}, None),
    ("Lion", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9}, ("Lion", {"learning_rate": 0.01})),
    ("Lion", {"learning_rate": 0.01, "weight_decay": 0.5, "clipvalue": 0.3}, ("Lion", {"learning_rate": 0.01})),
]


@pytest.mark.parametrize("kind,cfg,other", CASES, ids=[f"{c[0]}-{'-'.join(c[1]) or 'defaults'}" for c in CASES])
def test_update_follows_the_keras_formula(kind, cfg, other):
    w0 = np.random.default_rng(1).normal(0, 1, N).astype(F)
    grads = _gradients()
    expected, tol = reference(kind, cfg, w0, grads)
    got = run_kernel(getattr(keras.optimizers, kind)(**cfg), w0, grads)
    err = np.abs(got.astype(np.float64) - expected)
    assert np.all(err <= tol), (err / tol).max()
    if other is not None:    # the option moves the weights far beyond the tolerance
        assert (np.abs(reference(*other, w0, grads)[0].astype(np.float64) - expected) / tol).max() > 100


def test_nadam_state_continues_across_chunks():
    """Keras's running product of Nadam's momentum factors follows the
    iteration count: steps split over several parameter vectors (fit's
    chunks) end where one chunk does."""
    w0 = np.random.default_rng(1).normal(0, 1, N).astype(F)
    grads = _gradients(steps=9)
    expected, tol = reference("Nadam", {}, w0, grads)
    opt = keras.optimizers.Nadam()
    opt.build(N)
    w = w0.copy()
    for chunk in (grads[:2], grads[2:3], grads[3:]):
        hp = opt.hyper()
        for g in chunk:
            opt.iterations += 1
            prepare_step(opt.code, hp, opt.iterations, g, BOUNDS)
            update_range(opt.code, hp, opt.iterations, w, g, opt.slots, 0, N)
    assert np.all(np.abs(w.astype(np.float64) - expected) <= tol)


@pytest.mark.parametrize("kind,slots", [("Adam", 2), ("RMSprop", 2), ("Nadam", 2), ("Adadelta", 2), ("SGD", 2)])
def test_state_rows_and_initial_values(kind, slots):
    opt = getattr(keras.optimizers, kind)()
    opt.build(5)
    assert opt.slots.shape == (slots, 5) and opt.slots.dtype == np.float32 and not opt.slots.any()


def test_options_that_need_a_third_slot_and_accumulators_start_as_keras():
    for opt in (keras.optimizers.Adam(amsgrad=True), keras.optimizers.RMSprop(centered=True)):
        opt.build(4)
        assert opt.slots.shape == (3, 4) and not opt.slots.any()
    ftrl = keras.optimizers.Ftrl(initial_accumulator_value=0.3)
    ftrl.build(4)
    np.testing.assert_array_equal(ftrl.slots[0], F(0.3))
    np.testing.assert_array_equal(ftrl.slots[1], 0)


def test_keras_defaults_and_names():
    o = keras.optimizers
    assert (o.Nadam().beta_1, o.Nadam().beta_2, o.Nadam().epsilon, o.Nadam().name) == (0.9, 0.999, 1e-7, "nadam")
    assert (o.Adamax().learning_rate, o.Adamax().name) == (pytest.approx(1e-3), "adamax")
    adamw = o.AdamW()
    assert (adamw.weight_decay, adamw.amsgrad, adamw.name) == (0.004, False, "adamw")
    assert (o.Adadelta().rho, o.Adadelta().epsilon, o.Adadelta().name) == (0.95, 1e-7, "adadelta")
    ftrl = o.Ftrl()
    assert (ftrl.learning_rate_power, ftrl.initial_accumulator_value, ftrl.l1_regularization_strength,
            ftrl.beta) == (-0.5, 0.1, 0.0, 0.0)
    rms = o.RMSprop()
    assert (rms.momentum, rms.centered) == (0.0, False)
    assert o.Adam().amsgrad is False and o.Adam().weight_decay is None
    # the default names Keras 3.15.1 writes into its files (tests/keras_reference/saving/*.keras)
    assert (o.SGD().name, o.RMSprop().name, o.Adam().name, o.Adagrad().name) == ("sgd", "rm_sprop", "adam", "adagrad")
    for name in ("nadam", "adamax", "adamw", "adadelta", "ftrl"):
        assert type(o.get(name)).__name__.lower() == name


@pytest.mark.parametrize("make", [
    lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.02, amsgrad=True, clipnorm=1.5),
    lambda: keras.optimizers.RMSprop(momentum=0.5, centered=True, global_clipnorm=2.0),
    lambda: keras.optimizers.Ftrl(l1_regularization_strength=0.1, beta=0.2, clipvalue=0.5),
    lambda: keras.optimizers.Nadam(learning_rate=schedules.CosineDecay(0.1, 100, alpha=0.1, warmup_target=0.2,
                                                                        warmup_steps=10)),
])
def test_config_round_trips(make):
    opt = make()
    config = opt.get_config()
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is type(opt) and again.get_config() == config
    np.testing.assert_array_equal(again.hyper(), opt.hyper())


def test_bad_arguments_are_refused_with_their_names():
    o = keras.optimizers
    with pytest.raises(ValueError, match="Only one of clipnorm"):
        o.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        o.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="weight_decay"):
        o.SGD(weight_decay=-0.1)
    with pytest.raises(ValueError, match="clipnorm"):
        o.SGD(clipnorm=float("nan"))
    with pytest.raises(ValueError, match="learning_rate_power"):
        o.Ftrl(learning_rate_power=0.5)
    with pytest.raises(ValueError, match="beta_1"):
        o.Nadam(beta_1=1.5)
    with pytest.raises(ValueError, match="learning_rate"):
        o.Adam(learning_rate=lambda: 0.1)
    with pytest.raises(ValueError, match="use_ema"):
        o.Adam(use_ema=True)
    with pytest.raises(TypeError, match="amsgrd"):
        o.Adam(amsgrd=True)


# -- schedules ------------------------------------------------------------------------------

def _exponential(s, initial_learning_rate, decay_steps, decay_rate, staircase=False):
    """keras/src/optimizers/schedules/learning_rate_schedule.py: ExponentialDecay."""
    p = F(s) / F(decay_steps)
    return F(initial_learning_rate) * F(decay_rate) ** (np.floor(p) if staircase else p)


def _inverse_time(s, initial_learning_rate, decay_steps, decay_rate, staircase=False):
    """learning_rate_schedule.py: InverseTimeDecay."""
    p = F(s) / F(decay_steps)
    return F(initial_learning_rate) / (F(1) + F(decay_rate) * (np.floor(p) if staircase else p))


def _cosine(s, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    """learning_rate_schedule.py: CosineDecay, with its linear warmup."""
    def decay(step, start):
        cosine = F(0.5) * (F(1) + np.cos(F(math.pi) * (step / F(decay_steps))))
        return start * (F(1 - alpha) * cosine + F(alpha))
    s = F(s)
    if warmup_target is None:
        return decay(min(s, F(decay_steps)), F(initial_learning_rate))
    s = min(s, F(decay_steps) + F(warmup_steps))
    if s < warmup_steps:
        return (F(warmup_target) - F(initial_learning_rate)) * (s / F(warmup_steps)) + F(initial_learning_rate)
    return decay(s - F(warmup_steps), F(warmup_target))


def _piecewise(s, boundaries, values):
    """learning_rate_schedule.py: PiecewiseConstantDecay (step <= boundary is the left interval)."""
    for b, v in zip(boundaries, values):
        if s <= b:
            return F(v)
    return F(values[-1])


SCHEDULES = [
    (schedules.ExponentialDecay, dict(initial_learning_rate=0.1, decay_steps=3, decay_rate=0.5), _exponential),
    (schedules.ExponentialDecay, dict(initial_learning_rate=0.1, decay_steps=3, decay_rate=0.5, staircase=True),
     _exponential),
    (schedules.InverseTimeDecay, dict(initial_learning_rate=0.2, decay_steps=2, decay_rate=0.7), _inverse_time),
    (schedules.InverseTimeDecay, dict(initial_learning_rate=0.2, decay_steps=2, decay_rate=0.7, staircase=True),
     _inverse_time),
    (schedules.CosineDecay, dict(initial_learning_rate=0.3, decay_steps=8, alpha=0.1), _cosine),
    (schedules.CosineDecay, dict(initial_learning_rate=0.01, decay_steps=6, alpha=0.2, warmup_target=0.4,
                                 warmup_steps=4), _cosine),
    (schedules.PiecewiseConstantDecay, dict(boundaries=[2, 5, 9], values=[0.3, 0.2, 0.1, 0.05]), _piecewise),
]
SCHEDULE_IDS = [f"{c.__name__}{'-staircase' if k.get('staircase') else ''}{'-warmup' if 'warmup_target' in k else ''}"
                for c, k, _ in SCHEDULES]
STEPS_SEEN = range(14)      # past the end of every decay and warmup above


@pytest.mark.parametrize("cls,kwargs,formula", SCHEDULES, ids=SCHEDULE_IDS)
def test_schedule_follows_the_keras_formula(cls, kwargs, formula):
    schedule = cls(**kwargs)
    for s in STEPS_SEEN:
        assert schedule(s) == pytest.approx(float(formula(s, **kwargs)), rel=4 * 2.0 ** -23), s


def _step_probe(optimizer, steps):
    """A model whose SGD step ``t`` adds exactly the learning rate of that step
    to kernel entry ``t``: one-hot inputs, a zero kernel, and an MAE loss far
    from its target, whose gradient is -1 on the active entry."""
    model = keras.Sequential([keras.layers.Input(shape=(steps,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(loss="mae", optimizer=optimizer)
    return model, np.eye(steps, dtype=F), np.full((steps, 1), 1000.0, F)


@pytest.mark.parametrize("cls,kwargs,formula", SCHEDULES, ids=SCHEDULE_IDS)
def test_fit_uses_the_scheduled_rate_at_every_step(cls, kwargs, formula):
    steps = len(STEPS_SEEN)
    opt = keras.optimizers.SGD(learning_rate=cls(**kwargs))
    model, x, y = _step_probe(opt, steps)
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)
    used = model.layers[0].get_weights()[0][:, 0]
    np.testing.assert_array_equal(used, [F(opt.schedule(s)) for s in STEPS_SEEN])
    assert opt.iterations == steps and opt.learning_rate == opt.schedule(steps)
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)   # the schedule continues
    np.testing.assert_array_equal(model.layers[0].get_weights()[0][:, 0],
                                  used + np.array([opt.schedule(steps + s) for s in STEPS_SEEN], F))


def test_a_python_schedule_is_called_before_every_step():
    class Harmonic(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1 / (step + 1)

    model, x, y = _step_probe(keras.optimizers.SGD(learning_rate=Harmonic()), 5)
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0][:, 0], [F(0.1 / (s + 1)) for s in range(5)])


def test_a_scheduled_rate_is_not_settable_and_schedules_round_trip():
    opt = keras.optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        opt.learning_rate = 0.01
    for cls, kwargs, _ in SCHEDULES:
        schedule = cls(**kwargs)
        again = schedules.deserialize(schedules.serialize(schedule))
        assert type(again) is cls and again.get_config() == schedule.get_config() == {**again.get_config(), **kwargs}
        np.testing.assert_array_equal(again.encode(), schedule.encode())


def test_bad_schedule_arguments_are_refused():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="length of boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="increasing"):
        schedules.PiecewiseConstantDecay([3, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="Unknown learning rate schedule"):
        schedules.deserialize({"class_name": "os.system", "config": {}})


# -- through fit ---------------------------------------------------------------------------

X = np.random.default_rng(3).uniform(-1, 1, (8, 3)).astype(F)
Y = np.random.default_rng(4).normal(3, 1, (8, 2)).astype(F)
W0 = np.random.default_rng(5).normal(0, 0.5, (3, 2)).astype(F)
B0 = np.array([0.1, -0.2], dtype=F)


def _reference_by_batches(kind, cfg, epochs, batch_size):
    """Keras's loop for Dense(2) on (X, Y) with MSE: batches in order, one apply() each, the
    gradient (float64, rounded to float32) taken where the previous step left the weights. The
    kernel and the bias are two weight arrays (clipnorm clips each). Gradients from float32
    GEMMs carry ~1e-6 relative error on top of the update's rounding: 2^-18 per step covers both."""
    w = np.concatenate([W0.ravel(), B0])
    s = _initial_state(kind, cfg, w.size)
    moved = np.zeros(w.size)
    wd = cfg.get("weight_decay", 0.004 if kind == "AdamW" else None)
    t = 0
    for _ in range(epochs):
        for start in range(0, len(X), batch_size):
            xb, yb = X[start:start + batch_size].astype(np.float64), Y[start:start + batch_size]
            r = xb @ w[:6].reshape(3, 2).astype(np.float64) + w[6:] - yb
            g = np.concatenate([(2.0 / r.size * xb.T @ r).ravel(), 2.0 / r.size * r.sum(axis=0)]).astype(F)
            t += 1
            lr = F(cfg["learning_rate"])
            before = w.copy()
            _clip(cfg, g, [0, 6, 8])
            if wd is not None:
                w -= w * F(wd) * lr
            keras_step(kind, cfg, t, lr, w, g, s)
            moved += np.abs(w.astype(np.float64) - before)
    return w, t * 2.0 ** -18 * (np.abs(np.concatenate([W0.ravel(), B0])) + moved)


FIT_CASES = [
    ("Nadam", {"learning_rate": 0.05}),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1}),
    ("Adamax", {"learning_rate": 0.05}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Ftrl", {"learning_rate": 0.2, "l1_regularization_strength": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.5}),
    ("SGD", {"learning_rate": 0.1, "clipnorm": 0.5}),
    ("SGD", {"learning_rate": 0.1, "global_clipnorm": 0.5}),
    ("Lion", {"learning_rate": 0.05}),
    ("Lion", {"learning_rate": 0.02, "beta_1": 0.7, "beta_2": 0.95, "weight_decay": 0.2}),
]


@pytest.mark.parametrize("batch_size", [8, 3])
@pytest.mark.parametrize("kind,cfg", FIT_CASES, ids=[f"{k}-{'-'.join(c)}" for k, c in FIT_CASES])
def test_fit_applies_the_formula(kind, cfg, batch_size):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(shape=(3,)), keras.layers.Dense(2)])
    model.compile(loss="mse", optimizer=getattr(keras.optimizers, kind)(**cfg))
    model.layers[0].set_weights([W0, B0])
    model.fit(X, Y, batch_size=batch_size, epochs=3, shuffle=False, verbose=0)
    expected, tol = _reference_by_batches(kind, cfg, 3, batch_size)
    kernel, bias = model.layers[0].get_weights()
    got = np.concatenate([kernel.ravel(), bias]).astype(np.float64)
    assert np.all(np.abs(got - expected) <= tol), (np.abs(got - expected) / tol).max()


# -- Lion ------------------------------------------------------------------------------------------

def test_lion_defaults_name_and_config_are_keras():
    opt = keras.optimizers.Lion()
    assert (opt.beta_1, opt.beta_2, opt.name, opt.slot_names) == (0.9, 0.99, "lion", ("momentum",))
    assert opt.learning_rate == pytest.approx(1e-3) and opt.weight_decay is None
    assert type(keras.optimizers.get("lion")) is keras.optimizers.Lion
    lion = keras.optimizers.Lion(learning_rate=3e-4, beta_1=0.95, beta_2=0.98, weight_decay=0.01, clipnorm=1.0)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(lion))
    assert type(again) is keras.optimizers.Lion and again.get_config() == lion.get_config()
    assert {k: lion.get_config()[k] for k in ("beta_1", "beta_2", "weight_decay", "clipnorm")} == \
        {"beta_1": 0.95, "beta_2": 0.98, "weight_decay": 0.01, "clipnorm": 1.0}


def test_lion_refuses_a_beta_1_that_makes_it_sign_sgd():
    with pytest.raises(ValueError, match="beta_1"):
        keras.optimizers.Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="beta_1"):
        keras.optimizers.Lion(beta_1=1.5)
    with pytest.raises(ValueError, match="beta_2"):
        keras.optimizers.Lion(beta_2=-0.1)


def test_lion_moves_every_weight_by_the_learning_rate():
    """w -= lr * sign(b1*m + (1-b1)*g): each step is +-lr per entry (gradients here are never 0)."""
    w = np.random.default_rng(2).normal(0, 1, N).astype(F)
    opt = keras.optimizers.Lion(learning_rate=0.125)
    opt.build(N)
    for g in _gradients(steps=4):
        before = w.astype(np.float64)
        opt.iterations += 1
        update_range(opt.code, opt.hyper(), opt.iterations, w, g, opt.slots, 0, N)
        # w -+ lr rounds to float32: at most half an ulp of a number below 4
        np.testing.assert_allclose(np.abs(w - before), 0.125, rtol=0, atol=2.0 ** -22)
