"""The CUDA path beyond the basics: every optimizer and option, learning-rate
schedules, gradient clipping, LeakyReLU, BatchNormalization, weight
penalties, sample and class weights, metrics computed on the host; each
against the CPU path.

Device tests run on a GPU when there is one, and under Numba's CUDA
simulator in the subprocess that ``test_cuda.py`` starts (see its docstring).
"""
import sys

import numpy as np
import pytest

import fastnn as keras
from fastnn import config
from fastnn.optimizers import schedules
from numba.core import config as numba_config

SIMULATOR = bool(numba_config.ENABLE_CUDASIM)
if SIMULATOR:
    sys.setswitchinterval(5e-4)     # see test_cuda.py: the simulator's threads wait less for the GIL
    # Numba's simulator draws dropout masks with wrapping uint64 NumPy maths and seeds them in an
    # object-mode jit: both warn, neither matters.
    pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning"),
                  pytest.mark.filterwarnings("ignore:The keyword argument 'nopython=False'")]
# Needs numba.cuda; without it conftest.py deselects these (test_cuda.py's simulator subprocess runs them).
device = pytest.mark.cuda_device
RNG = np.random.default_rng(17)
O = keras.optimizers


def _f32(*shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


OPTIMIZERS = {
    "sgd": lambda: O.SGD(0.1),
    "sgd-momentum": lambda: O.SGD(0.1, momentum=0.9),
    "sgd-nesterov-weight-decay": lambda: O.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
    "rmsprop": lambda: O.RMSprop(0.01),
    "rmsprop-momentum": lambda: O.RMSprop(0.01, momentum=0.5),
    "rmsprop-centered": lambda: O.RMSprop(0.01, centered=True),
    "rmsprop-centered-momentum-clipvalue": lambda: O.RMSprop(0.01, centered=True, momentum=0.5, clipvalue=0.5),
    "adam-clipnorm": lambda: O.Adam(0.01, clipnorm=1.0),
    "adam-amsgrad-global-clipnorm": lambda: O.Adam(0.01, amsgrad=True, global_clipnorm=0.5),
    "adamw": lambda: O.AdamW(0.01, weight_decay=0.1),
    "adagrad": lambda: O.Adagrad(0.05),
    "nadam": lambda: O.Nadam(0.01),
    "adamax": lambda: O.Adamax(0.01),
    "adadelta": lambda: O.Adadelta(1.0),
    "ftrl": lambda: O.Ftrl(0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.02,
                           l2_shrinkage_regularization_strength=0.01, beta=0.1),
    "ftrl-power": lambda: O.Ftrl(0.1, learning_rate_power=-0.7),
    "lion": lambda: O.Lion(0.01),
    "lion-weight-decay-clipnorm": lambda: O.Lion(0.01, beta_1=0.5, beta_2=0.9, weight_decay=0.1, clipnorm=1.0),
    "sgd-exponential": lambda: O.SGD(schedules.ExponentialDecay(0.1, 2, 0.5, staircase=True), momentum=0.5),
    "adam-cosine-warmup": lambda: O.Adam(schedules.CosineDecay(0.001, 4, alpha=0.1, warmup_target=0.01,
                                                               warmup_steps=2)),
    "rmsprop-piecewise": lambda: O.RMSprop(schedules.PiecewiseConstantDecay([1, 2], [0.01, 0.005, 0.001])),
    "adagrad-inverse-time": lambda: O.Adagrad(schedules.InverseTimeDecay(0.1, 1, 0.5)),
}


@device
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_kernels_match_cpu_prepare_step_and_update(name):
    # Three steps of the CPU's prepare_step + update_range against the device's prepare_step + apply_update,
    # from the same weights, slots and gradients: weights, every slot row, the clipped gradient, and the
    # step's learning rate and Nadam product left in hp.
    from numba import cuda
    from fastnn.kernels.cpu.optimizers import prepare_step as cpu_prepare, update_range
    from fastnn.kernels.cuda.launch import THREADS, blocks_for
    from fastnn.kernels.cuda.optimizers import REDUCE_THREADS, apply_update, needs_prepare, prepare_step
    opt = OPTIMIZERS[name]()
    n, total = 37, 40                                # only the trainable prefix [0, n) moves
    bounds = np.array([0, 10, 25, n], np.int64)      # three weight arrays, for clipnorm
    opt.build(n)
    # Positive slots, the third row (centered RMSprop's mean gradient, AMSGrad's v_hat) smaller, so that
    # centered RMSprop's v - a^2 stays positive and every result is finite.
    opt.slots[...] = 0.5 + np.abs(_f32(*opt.slots.shape))
    opt.slots[2:] *= 0.1
    hp = opt.hyper()
    w = _f32(total)
    cpu_w, cpu_slots, cpu_hp = w.copy(), opt.slots.copy(), hp.copy()
    d_w, d_slots, d_hp = cuda.to_device(w), cuda.to_device(opt.slots), cuda.to_device(hp)
    d_bounds, d_clip = cuda.to_device(bounds), cuda.to_device(np.zeros(3, np.float32))
    for step in (1, 2, 3):
        g = _f32(total)
        g[:10] *= 0.05                               # one array under clipnorm, two over it
        cpu_g = g.copy()
        cpu_prepare(opt.code, cpu_hp, step, cpu_g, bounds)
        update_range(opt.code, cpu_hp, step, cpu_w, cpu_g, cpu_slots, 0, n)
        d_g = cuda.to_device(g)
        if needs_prepare(opt.code, hp):
            prepare_step[1, REDUCE_THREADS](opt.code, d_hp, step, d_g, d_bounds, d_clip)
        apply_update[blocks_for(n), THREADS](opt.code, d_hp, step, d_w, d_g, d_slots, n, d_bounds, d_clip)
        np.testing.assert_allclose(d_g.copy_to_host()[:n], cpu_g[:n], rtol=1e-6, atol=1e-7, err_msg=f"step {step}")
        np.testing.assert_allclose(d_hp.copy_to_host(), cpu_hp, rtol=1e-6, err_msg=f"step {step}")
    np.testing.assert_allclose(d_w.copy_to_host(), cpu_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_slots.copy_to_host(), cpu_slots, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(d_w.copy_to_host()[n:], w[n:])
    assert np.all(np.isfinite(cpu_w)) and not np.allclose(cpu_w[:n], w[:n])     # finite, and moved


@device
def test_penalty_kernel_matches_cpu_regularizers():
    from numba import cuda
    from fastnn.kernels.cpu.regularizers import penalty
    from fastnn.kernels.cuda.launch import THREADS
    from fastnn.kernels.cuda.regularizers import add_penalty
    params = _f32(300)
    params[5] = 0.0                                   # sign(0) = 0
    regs = np.array([[3, 100, 0], [150, 120, 2]], np.int64)
    consts = np.array([0.01, 0.02, 0.0, 0.5], np.float32)
    grads = _f32(300)
    cpu_grads = grads.copy()
    want = penalty(regs, consts, params, cpu_grads, True)
    d_grads, d_sums = cuda.to_device(grads), cuda.to_device(np.array([1.5, 0.0]))
    add_penalty[3, THREADS](cuda.to_device(regs), cuda.to_device(consts), cuda.to_device(params), d_grads, True,
                            4.0, d_sums)
    np.testing.assert_allclose(d_sums.copy_to_host(), [1.5 + 4.0 * want, 0.0], rtol=1e-6)
    np.testing.assert_allclose(d_grads.copy_to_host(), cpu_grads, rtol=1e-6, atol=1e-7)


@device
def test_leaky_relu_op_forward_and_backward():
    from numba import cuda
    from fastnn.kernels.cuda import elementwise as ew
    from fastnn.kernels.cuda.launch import THREADS
    from fastnn.kernels.program import LEAKY_RELU
    rows, n = 3, 4
    x = _f32(rows * n)
    x[0] = 0.0
    consts = cuda.to_device(np.array([9.0, 0.25], np.float32))
    empty = cuda.to_device(np.zeros(1, np.float32))
    ws = cuda.to_device(np.r_[x, np.zeros(rows * n, np.float32)])
    ew.op_forward[1, THREADS](LEAKY_RELU, 0, n, rows, 0, rows * n, ws, empty, -1, -1, consts, 1)
    np.testing.assert_array_equal(ws.copy_to_host()[rows * n:], np.where(x > 0, x, np.float32(0.25) * x))
    ga = _f32(rows * n)
    gs = cuda.to_device(np.r_[np.zeros(rows * n, np.float32), ga])
    ew.op_backward[1, THREADS](LEAKY_RELU, 0, n, rows, 0, 0, rows * n, ws, gs, empty, -1, consts, 1)
    np.testing.assert_array_equal(gs.copy_to_host()[:rows * n], np.where(x > 0, ga, ga * np.float32(0.25)))


def _model(opt, regularized=False, metrics=("accuracy",), weighted_metrics=None):
    keras.set_random_seed(3)
    reg = dict(kernel_regularizer=keras.regularizers.L1L2(0.01, 0.02), bias_regularizer="l2") if regularized else {}
    model = keras.Sequential([keras.layers.Input(shape=[5]), keras.layers.Dense(7, **reg),
                              keras.layers.LeakyReLU(0.2), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=opt, metrics=list(metrics),
                  weighted_metrics=weighted_metrics)
    return model


def _fit_both(make, X, y, **kwargs):
    """Fits a fresh ``make()`` on the CPU and on CUDA; returns (model, history, evaluate result) of each."""
    out = []
    for dev in ("cpu", "cuda"):
        model = make()
        with keras.device(dev):
            history = model.fit(X, y, verbose=0, **kwargs)
            score = model.evaluate(X, y, batch_size=7, verbose=0,
                                   sample_weight=kwargs.get("sample_weight"))
        out.append((model, history.history, score))
    return out


def _assert_same(cpu, gpu):
    (m0, h0, s0), (m1, h1, s1) = cpu, gpu
    for a, b in zip(m0.get_weights(), m1.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m1.optimizer.slots, m0.optimizer.slots, rtol=1e-5, atol=1e-6)
    assert m0.optimizer.iterations == m1.optimizer.iterations
    assert h0.keys() == h1.keys()
    for key in h0:
        np.testing.assert_allclose(h1[key], h0[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(s1, s0, rtol=1e-5)


@device
def test_fit_with_leaky_relu_penalties_nadam_schedule_and_global_clipnorm_matches_cpu():
    X, y = _f32(13, 5), RNG.integers(0, 3, 13)
    make = lambda: _model(O.Nadam(schedules.ExponentialDecay(0.05, 3, 0.5), global_clipnorm=0.3),  # noqa: E731
                          regularized=True)
    cpu, gpu = _fit_both(make, X, y, batch_size=5, epochs=2, shuffle=True)
    _assert_same(cpu, gpu)
    assert cpu[1]["loss"][0] > 0.3          # the penalties count in the loss (checked equal above)


@device
def test_fit_with_sample_weights_and_host_metrics_matches_cpu():
    # Sample weights weigh the loss; an own metric and a weighted metric are computed on the host from the
    # device's training-mode outputs.
    X, y = _f32(12, 5), RNG.integers(0, 3, 12)
    sw = _f32(12, lo=0.0, hi=2.0)

    def top_prob(y_true, y_pred):
        return np.max(y_pred, axis=-1)

    make = lambda: _model(O.RMSprop(0.01, momentum=0.5, centered=True, clipvalue=0.1),  # noqa: E731
                          metrics=("accuracy", top_prob), weighted_metrics=["accuracy"])
    cpu, gpu = _fit_both(make, X, y, batch_size=5, epochs=2, shuffle=True, sample_weight=sw,
                         validation_data=(X[:6], y[:6], sw[:6]))
    _assert_same(cpu, gpu)
    assert {"top_prob", "weighted_accuracy", "val_weighted_accuracy"} <= set(cpu[1])


@device
def test_fit_with_class_weights_matches_cpu():
    X, y = _f32(10, 5), RNG.integers(0, 3, 10)
    cpu, gpu = _fit_both(lambda: _model(O.SGD(0.1, momentum=0.9)), X, y, batch_size=4, epochs=1,
                         class_weight={0: 1.0, 1: 3.0, 2: 0.5})
    _assert_same(cpu, gpu)


@device
def test_loss_and_gradients_with_sample_weights_penalties_and_dropout_match_cpu():
    # Dropout is the identity here (training=False): its backward must not apply a mask from an earlier fit.
    from fastnn.models.training import loss_and_gradients
    X, y, sw = _f32(9, 5), RNG.integers(0, 3, 9), _f32(9, lo=0.0, hi=2.0)
    keras.set_random_seed(6)
    model = keras.Sequential([keras.layers.Input(shape=[5]), keras.layers.Dense(7, kernel_regularizer="l1"),
                              keras.layers.LeakyReLU(0.2), keras.layers.Dropout(0.5),
                              keras.layers.Dense(3, activation="softmax", bias_regularizer="l2")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    with keras.device("cuda"):
        model.fit(X, y, batch_size=4, epochs=1, verbose=0)      # leaves dropout masks in the device workspace
    with keras.device("cpu"):
        loss0, g0 = loss_and_gradients(model, X, y, sample_weight=sw)
    with keras.device("cuda"):
        loss1, g1 = loss_and_gradients(model, X, y, sample_weight=sw)
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-7)


@device
@pytest.mark.parametrize("training, frozen", [(True, False), (False, False), (True, True)])
def test_batchnorm_kernels_match_cpu(training, frozen):
    # Forward (statistics, outputs, moving-statistics update), then backward (gamma, beta, input gradients),
    # on the same buffers as the CPU functions; 19 rows, 5 features at offsets.
    from numba import cuda
    from fastnn.kernels import program as P
    from numba import njit
    from fastnn.kernels.kinds import batchnorm as cpu_bn
    # the kind's functions are called only through pointers (no Python entry): compile them callable here
    batchnorm_forward, batchnorm_backward, batchnorm_update_moving = (
        njit(f.py_func) for f in (cpu_bn.batchnorm_forward, cpu_bn.batchnorm_backward, cpu_bn.batchnorm_update_moving))
    from fastnn.kernels.cuda import batchnorm as bn
    from fastnn.kernels.cuda.launch import THREADS
    b, n = 19, 5
    rec = np.zeros(P.N_FIELDS, np.int64)
    rec[P.KIND], rec[P.N_IN], rec[P.N_OUT] = P.BATCHNORM, n, n
    rec[P.W_OFF], rec[P.B_OFF], rec[P.S_OFF], rec[P.AUX] = 0, n, 2 * n, 1      # gamma, beta, moving mean / var
    rec[P.X_POS], rec[P.Z_POS], rec[P.A_POS] = 0, n, 6 * n                      # x, 5n of statistics, a
    rec[P.FLAGS] = P.NEED_DX | (P.FROZEN if frozen else 0)
    rec[P.IAUX] = 0
    ints = np.array([n], np.int64)                                              # features per row
    consts = np.array([9.0, 1e-3, 0.9, 0.1], np.float32)                        # eps, momentum, 1 - momentum
    params = np.r_[_f32(n, lo=0.5, hi=2), _f32(n), _f32(n), _f32(n, lo=0.5, hi=2)].astype(np.float32)
    ws = np.r_[_f32(b * n) * 3 + 1, np.zeros(b * 6 * n, np.float32)].astype(np.float32)
    gs = np.r_[np.zeros(b * 6 * n, np.float32), _f32(b * n)].astype(np.float32)
    d_params, d_ws, d_gs = cuda.to_device(params), cuda.to_device(ws), cuda.to_device(gs)
    d_grads = cuda.to_device(np.zeros(4 * n, np.float32))
    batch_stats = training and not frozen
    bn.batchnorm_forward[1, THREADS](n, b, 0, b * 6 * n, b * n, 0, n, 2 * n, consts[1], consts[2], consts[3],
                                     batch_stats, d_params, d_ws)
    bn.batchnorm_backward[1, THREADS](n, b, 0, b * 6 * n, b * n, 0, n, not frozen, True, batch_stats, d_params,
                                      d_grads, d_ws, d_gs)
    grads = np.zeros(4 * n, np.float32)
    batchnorm_forward(rec, ints, params, consts, grads, ws, gs, b, training)
    if training:
        batchnorm_update_moving(rec, ints, params, consts, grads, ws, gs, b, training)
    a = ws[b * 6 * n:].copy()
    batchnorm_backward(rec, ints, params, consts, grads, ws, gs, b, training)
    np.testing.assert_allclose(d_ws.copy_to_host()[b * 6 * n:], a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_params.copy_to_host(), params, rtol=1e-6)
    np.testing.assert_allclose(d_grads.copy_to_host(), grads, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_gs.copy_to_host()[:b * n], gs[:b * n], rtol=1e-4, atol=1e-6)
    assert np.abs(gs[:b * n]).max() > 0


@device
def test_fit_with_batchnorm_and_dropout_at_rate_zero_matches_cpu():
    X, y = _f32(11, 5) * 2 + 1, RNG.integers(0, 3, 11)

    def make():
        keras.set_random_seed(4)
        model = keras.Sequential([keras.layers.Input(shape=[5]), keras.layers.Dense(6, use_bias=False),
                                  keras.layers.BatchNormalization(momentum=0.8), keras.layers.Activation("relu"),
                                  keras.layers.Dropout(0.0), keras.layers.Dense(4, activation="tanh"),
                                  keras.layers.BatchNormalization(center=False),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer=O.Adam(0.02), metrics=["accuracy"])
        return model

    cpu, gpu = _fit_both(make, X, y, batch_size=4, epochs=2, shuffle=True)
    _assert_same(cpu, gpu)        # moving statistics included: get_weights holds them


@device
def test_what_cuda_cannot_run_is_refused_before_training():
    X, y = _f32(4, 5), RNG.integers(0, 3, 4)
    model = _model("sgd")
    model.compile(loss=keras.losses.Huber(), optimizer="sgd")   # a Loss subclass: compiled for the CPU only
    before = model.get_weights()
    with keras.device("cuda"):
        with pytest.raises(NotImplementedError, match="the loss Huber"):
            model.fit(X, np.eye(3, dtype=np.float32)[y], verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
