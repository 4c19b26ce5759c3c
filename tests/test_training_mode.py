"""model(x, training=True): the layers in training mode, nothing updated (Monte-Carlo Dropout)."""
import numpy as np

import fastnn as keras

L = keras.layers


def test_monte_carlo_dropout_spread_is_bernoulli():
    rate, value = 0.3, 2.0
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((50,)), L.Dropout(rate)])
    x = np.full((4, 50), value, dtype=np.float32)
    passes = np.stack([model(x, training=True) for _ in range(100)]).astype(np.float64).ravel()
    # each value is 0 (probability rate) or value / (1 - rate): a two-point distribution
    keep, c = 1 - rate, value / (1 - rate)
    var = c * c * keep * rate
    mu4 = c ** 4 * keep * rate * (1 - 3 * keep + 3 * keep * keep)
    se_var = np.sqrt((mu4 - var * var) / passes.size)
    assert set(np.unique(passes.astype(np.float32))) == {np.float32(0.0), np.float32(c)}
    assert abs(passes.var() - var) < 5 * se_var
    assert abs(passes.mean() - value) < 5 * np.sqrt(var / passes.size)
    # inference mode: no dropout, the same outputs every time
    assert np.array_equal(model(x, training=False), x) and np.array_equal(model(x), model.predict(x, verbose=0))


def test_mc_dropout_in_a_trained_model_and_weights_untouched():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), L.Dense(16, activation="relu"), L.Dropout(0.5), L.Dense(3)])
    model.compile(loss="mse", optimizer="adam")
    x = np.random.default_rng(1).standard_normal((20, 8)).astype(np.float32)
    before = model.get_weights()
    runs = np.stack([model(x, training=True) for _ in range(10)])
    assert np.std(runs, axis=0).mean() > 1e-3          # a spread of predictions
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_batchnorm_uses_batch_statistics_and_keeps_moving_ones():
    model = keras.Sequential([keras.Input((3,)), L.BatchNormalization(epsilon=1e-3)])
    bn = model.layers[0]
    bn.set_weights([np.array([1.0, 2.0, 0.5], np.float32), np.array([0.0, 1.0, -1.0], np.float32),
                    np.array([5.0, 5.0, 5.0], np.float32), np.array([4.0, 4.0, 4.0], np.float32)])
    x = np.random.default_rng(2).standard_normal((40, 3)).astype(np.float32) * 3 + 1     # one batch of 40, as Keras
    gamma, beta = bn.get_weights()[:2]
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-3) * gamma + beta
    np.testing.assert_allclose(model(x, training=True), expected, rtol=1e-4, atol=1e-5)
    assert np.array_equal(bn.get_weights()[2], np.full(3, 5.0, np.float32))
    expected_inference = (x - 5.0) / np.sqrt(4.0 + 1e-3) * gamma + beta
    np.testing.assert_allclose(model(x), expected_inference, rtol=1e-5, atol=1e-5)
