"""Optimizer updates against Keras 3's formulas written out in NumPy float32.

Keras 3 (GUIDE section 5; g gradient, t step from 1):
  SGD      m = momentum*m - lr*g; w += m (Nesterov: w += momentum*m - lr*g); no momentum: w -= lr*g
  RMSprop  v = rho*v + (1-rho)*g^2; w -= lr*g / sqrt(v + eps)
  Adam     a = lr*sqrt(1-b2^t)/(1-b1^t); m += (g-m)*(1-b1); v += (g^2-v)*(1-b2); w -= a*m/(sqrt(v)+eps)
  Adagrad  acc += g^2 (acc starts at 0.1); w -= lr*g / sqrt(acc + eps)

Tolerance: each step is a handful of float32 operations per element, which
the compiled kernel may reorder or fuse (fastmath), so one step may differ
from the NumPy reference by a few ulps of the magnitudes involved; after K
steps the bound used is K * 2^-20 (8 ulps) of |w0| + sum |updates|. The
gradients span 1e-5 to 1 so that the conventions Keras differs on (epsilon
inside or outside the square root, where bias correction meets epsilon,
the initial accumulator) change the result far beyond that bound; the tests
check that they do.
"""
import numpy as np
import pytest

import fastnn as keras
from fastnn.kernels.cpu.optimizers import apply_update, update_range

from _util import compiled

F = np.float32
N = 37            # not a multiple of the 16-float blocks the parallel update is split into
STEPS = 5


def _gradients(steps=STEPS, n=N, seed=0):
    """Gradients with magnitudes log-uniform in [1e-5, 1] and random signs."""
    rng = np.random.default_rng(seed)
    magnitude = 10.0 ** rng.uniform(-5, 0, (steps, n))
    return (magnitude * rng.choice([-1.0, 1.0], (steps, n))).astype(F)


def reference_step(opt, t, w, g, s1, s2, eps_inside_adam=False, rmsprop_eps_outside=False):
    """One Keras 3 update in NumPy float32, in place on w, s1, s2."""
    lr = F(opt.learning_rate)
    if isinstance(opt, keras.optimizers.SGD):
        mom = F(opt.momentum)
        if mom == 0:
            w -= lr * g
            return
        s1[:] = mom * s1 - lr * g
        w += mom * s1 - lr * g if opt.nesterov else s1
    elif isinstance(opt, keras.optimizers.RMSprop):
        rho, eps = F(opt.rho), F(opt.epsilon)
        s1[:] = rho * s1 + (F(1) - rho) * g * g
        w -= lr * g / (np.sqrt(s1) + eps if rmsprop_eps_outside else np.sqrt(s1 + eps))
    elif isinstance(opt, keras.optimizers.Adam):
        b1, b2, eps = F(opt.beta_1), F(opt.beta_2), F(opt.epsilon)
        s1 += (g - s1) * (F(1) - b1)
        s2 += (g * g - s2) * (F(1) - b2)
        if eps_inside_adam:   # PyTorch's convention: m_hat / (sqrt(v_hat) + eps)
            m_hat = s1 / (F(1) - b1 ** F(t))
            v_hat = s2 / (F(1) - b2 ** F(t))
            w -= lr * m_hat / (np.sqrt(v_hat) + eps)
        else:
            alpha = lr * np.sqrt(F(1) - b2 ** F(t)) / (F(1) - b1 ** F(t))
            w -= alpha * s1 / (np.sqrt(s2) + eps)
    elif isinstance(opt, keras.optimizers.Adagrad):
        s1 += g * g
        w -= lr * g / np.sqrt(s1 + F(opt.epsilon))
    else:
        raise AssertionError(f"no reference for {opt!r}")


def _initial_slots(opt, n):
    """Keras's slot initial values: Adagrad's accumulator starts at
    initial_accumulator_value, every other slot at 0."""
    s1 = np.full(n, opt.initial_accumulator_value if isinstance(opt, keras.optimizers.Adagrad) else 0, F)
    return s1, np.zeros(n, F)


def run_reference(opt, w0, grads, **variant):
    w, (s1, s2) = w0.copy(), _initial_slots(opt, w0.size)
    total_update = np.zeros(w0.size)
    for t, g in enumerate(grads, start=1):
        before = w.copy()
        reference_step(opt, t, w, g, s1, s2, **variant)
        total_update += np.abs(w.astype(np.float64) - before)
    return w, s1, s2, STEPS * 2.0 ** -20 * (np.abs(w0) + total_update)


OPTIMIZERS = [
    ("sgd", lambda: keras.optimizers.SGD()),
    ("sgd_lr", lambda: keras.optimizers.SGD(learning_rate=0.1)),
    ("momentum", lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)),
    ("nesterov", lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("rmsprop", lambda: keras.optimizers.RMSprop()),
    ("rmsprop_custom", lambda: keras.optimizers.RMSprop(learning_rate=0.01, rho=0.8, epsilon=1e-6)),
    ("adam", lambda: keras.optimizers.Adam()),
    ("adam_custom", lambda: keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6)),
    ("adagrad", lambda: keras.optimizers.Adagrad()),
    ("adagrad_custom", lambda: keras.optimizers.Adagrad(learning_rate=0.05, initial_accumulator_value=0.2,
                                                        epsilon=1e-6)),
]


def test_keras_defaults():
    sgd = keras.optimizers.SGD()
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (pytest.approx(0.01), 0.0, False)
    rms = keras.optimizers.RMSprop()
    assert (rms.learning_rate, rms.rho, rms.epsilon) == (pytest.approx(0.001), pytest.approx(0.9),
                                                         pytest.approx(1e-7))
    adam = keras.optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (
        pytest.approx(0.001), pytest.approx(0.9), pytest.approx(0.999), pytest.approx(1e-7))
    adagrad = keras.optimizers.Adagrad()
    assert (adagrad.learning_rate, adagrad.initial_accumulator_value, adagrad.epsilon) == (
        pytest.approx(0.001), pytest.approx(0.1), pytest.approx(1e-7))


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_slots_start_as_keras_does(name, make):
    opt = make()
    opt.build(N)
    s1, s2 = _initial_slots(opt, N)
    np.testing.assert_array_equal(opt.slots[0], s1)
    np.testing.assert_array_equal(opt.slots[1], s2)
    assert opt.iterations == 0


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_update_range_follows_the_formula(name, make):
    opt = make()
    w0 = np.random.default_rng(1).normal(0, 1, N).astype(F)
    grads = _gradients()
    w_ref, s1_ref, s2_ref, tol = run_reference(opt, w0, grads)
    opt.build(N)
    w, slots = w0.copy(), opt.slots.copy()
    s1, s2 = slots[0], slots[1]
    for t, g in enumerate(grads, start=1):
        update_range(opt.code, opt.hyper(), t, w, g, slots, 0, N)
    assert np.all(np.abs(w.astype(np.float64) - w_ref) <= tol), np.abs(w - w_ref).max()
    np.testing.assert_allclose(s1, s1_ref, rtol=STEPS * 2.0 ** -20, atol=1e-30)
    np.testing.assert_allclose(s2, s2_ref, rtol=STEPS * 2.0 ** -20, atol=1e-30)
    assert not np.array_equal(w, w0)


@pytest.mark.parametrize("n_parts", [1, 2, 3])
@pytest.mark.parametrize("name,make", OPTIMIZERS[::2], ids=[o[0] for o in OPTIMIZERS[::2]])
def test_parallel_update_covers_the_whole_buffer(name, make, n_parts):
    """apply_update splits the buffer into threads' ranges: every entry below n is
    updated exactly once, the tail beyond n (frozen weights) never."""
    opt = make()
    n_train = N - 5
    w0 = np.random.default_rng(2).normal(0, 1, N).astype(F)
    grads = _gradients()
    w_ref, _, _, tol = run_reference(opt, w0[:n_train], grads[:, :n_train])
    opt.build(N)
    w = w0.copy()
    for t, g in enumerate(grads, start=1):
        apply_update(opt.code, opt.hyper(), t, w, g, opt.slots, n_train, n_parts)
    assert np.all(np.abs(w[:n_train].astype(np.float64) - w_ref) <= tol)
    np.testing.assert_array_equal(w[n_train:], w0[n_train:])


def test_the_data_tells_the_conventions_apart():
    """Epsilon inside the square root (RMSprop) and Keras's bias correction (Adam)
    move the weights far more than the tolerance, so the tests above would see
    PyTorch's conventions."""
    w0 = np.random.default_rng(1).normal(0, 1, N).astype(F)
    grads = _gradients()
    for opt, variant in ((keras.optimizers.RMSprop(), {"rmsprop_eps_outside": True}),
                         (keras.optimizers.Adam(), {"eps_inside_adam": True})):
        keras_w, _, _, tol = run_reference(opt, w0, grads)
        other_w = run_reference(opt, w0, grads, **variant)[0]
        assert (np.abs(other_w.astype(np.float64) - keras_w) / tol).max() > 100
    # Adagrad's initial accumulator: 0.1 against 0.
    keras_w, _, _, tol = run_reference(keras.optimizers.Adagrad(), w0, grads)
    zero_start = run_reference(keras.optimizers.Adagrad(initial_accumulator_value=0.0), w0, grads)[0]
    assert (np.abs(zero_start.astype(np.float64) - keras_w) / tol).max() > 100


# -- through fit -----------------------------------------------------------------

X = np.random.default_rng(3).uniform(-1, 1, (8, 3)).astype(F)
Y = np.random.default_rng(4).normal(3, 1, (8, 2)).astype(F)
W0 = np.random.default_rng(5).normal(0, 0.5, (3, 2)).astype(F)
B0 = np.array([0.1, -0.2], dtype=F)


def _mse_gradient(w, b, x, y):
    """d/d(w, b) of mean((x w + b - y)^2) over rows and outputs, in float64."""
    r = x.astype(np.float64) @ w + b - y
    scale = 2.0 / r.size
    return (scale * x.T.astype(np.float64) @ r).astype(F), (scale * r.sum(axis=0)).astype(F)


def _fit_reference(opt, epochs, batch_size):
    """Keras's training loop for Dense(2) on (X, Y): batches in order, one update each."""
    flat = np.concatenate([W0.ravel(), B0])      # fastnn's layout: kernel then bias
    s1, s2 = _initial_slots(opt, flat.size)
    total_update = np.zeros(flat.size)
    t = 0
    for _ in range(epochs):
        for start in range(0, len(X), batch_size):
            xb, yb = X[start:start + batch_size], Y[start:start + batch_size]
            gw, gb = _mse_gradient(flat[:6].reshape(3, 2), flat[6:], xb, yb)
            t += 1
            before = flat.copy()
            reference_step(opt, t, flat, np.concatenate([gw.ravel(), gb]), s1, s2)
            total_update += np.abs(flat.astype(np.float64) - before)
    # Gradients come from float32 GEMMs over a few rows: relative error ~1e-6
    # on top of the update's own rounding; 2^-18 per step bounds both.
    return flat, t * 2.0 ** -18 * (np.abs(np.concatenate([W0.ravel(), B0])) + total_update)


def _linear_model(opt):
    model = compiled([keras.layers.Dense(2, input_shape=(3,))], loss="mse", optimizer=opt)
    model.layers[0].set_weights([W0, B0])
    return model


@pytest.mark.parametrize("batch_size", [8, 3])
@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_fit_applies_the_formula(name, make, batch_size):
    model = _linear_model(make())
    model.fit(X, Y, batch_size=batch_size, epochs=4, shuffle=False, verbose=0)
    expected, tol = _fit_reference(make(), 4, batch_size)
    kernel, bias = model.layers[0].get_weights()
    got = np.concatenate([kernel.ravel(), bias]).astype(np.float64)
    assert np.all(np.abs(got - expected) <= tol), np.abs(got - expected).max()
    assert model.optimizer.iterations == 4 * -(-len(X) // batch_size)


@pytest.mark.parametrize("name,make", [OPTIMIZERS[3], OPTIMIZERS[6]], ids=["nesterov", "adam"])
def test_a_second_fit_continues_the_optimizer_state(name, make):
    """Keras keeps the optimizer's iterations and slots across fit calls: two
    fits of 2 epochs end where one fit of 4 does."""
    model = _linear_model(make())
    model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    expected, tol = _fit_reference(make(), 4, 8)
    kernel, bias = model.layers[0].get_weights()
    got = np.concatenate([kernel.ravel(), bias]).astype(np.float64)
    assert np.all(np.abs(got - expected) <= tol)
    assert model.optimizer.iterations == 4
