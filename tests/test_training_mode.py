"""training= honoured: model(x, training=True) and layer(x, training=True) on arrays (Monte-Carlo
Dropout, batch statistics), and layers called with training=True/False inside a graph, in every run."""
import numpy as np
import pytest

import fastnn as keras
from fastnn.models.training import loss_and_gradients

from _util import assert_gradient_matches

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


def test_batchnorm_uses_batch_statistics_and_updates_moving_ones_once():
    model = keras.Sequential([keras.Input((3,)), L.BatchNormalization(epsilon=1e-3)])
    bn = model.layers[0]
    bn.set_weights([np.array([1.0, 2.0, 0.5], np.float32), np.array([0.0, 1.0, -1.0], np.float32),
                    np.array([5.0, 5.0, 5.0], np.float32), np.array([4.0, 4.0, 4.0], np.float32)])
    x = np.random.default_rng(2).standard_normal((40, 3)).astype(np.float32) * 3 + 1     # one batch of 40, as Keras
    gamma, beta = bn.get_weights()[:2]
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-3) * gamma + beta
    np.testing.assert_allclose(model(x, training=True), expected, rtol=1e-4, atol=1e-5)
    # Keras 3 in an eager call: moving = moving * momentum + batch statistic * (1 - momentum), once
    moving_mean, moving_var = 5.0 * 0.99 + 0.01 * x.mean(axis=0), 4.0 * 0.99 + 0.01 * x.var(axis=0)
    np.testing.assert_allclose(bn.get_weights()[2], moving_mean, rtol=1e-6)
    np.testing.assert_allclose(bn.get_weights()[3], moving_var, rtol=1e-6)
    expected_inference = (x - moving_mean) / np.sqrt(moving_var + 1e-3) * gamma + beta
    np.testing.assert_allclose(model(x), expected_inference, rtol=1e-5, atol=1e-5)


def _kept_fraction_ok(values, rate):
    """The share of zeros is within five standard errors of ``rate``."""
    zeros = np.mean(values == 0.0)
    return abs(zeros - rate) < 5 * np.sqrt(rate * (1 - rate) / values.size)


def test_dropout_called_with_training_true_drops_in_predict_and_evaluate():
    """Hands-On's MC Dropout: Dropout(rate)(x, training=True) in a graph runs in training mode in
    every run; the layers around it keep the run's mode."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((300,))
    out = L.Dropout(0.4)(inp, training=True)
    model = keras.Model(inp, out)
    x = np.full((4, 300), 3.0, np.float32)
    first, second = model.predict(x, verbose=0), model.predict(x, verbose=0)
    assert set(np.unique(first)) == {np.float32(0.0), np.float32(3.0 / 0.6)}
    assert _kept_fraction_ok(first, 0.4) and not np.array_equal(first, second)
    model.compile(loss="mse", optimizer="sgd")
    assert model.evaluate(x, x, verbose=0) != model.evaluate(x, x, verbose=0)
    assert not np.array_equal(model(x), model(x))


def test_mc_dropout_model_trains_and_predicts_a_spread():
    keras.utils.set_random_seed(6)
    inp = keras.Input((8,))
    h = L.Dense(32, activation="relu")(inp)
    h = L.Dropout(0.5)(h, training=True)
    model = keras.Model(inp, L.Dense(1)(h))
    model.compile(loss="mse", optimizer="adam")
    x = np.random.default_rng(6).standard_normal((64, 8)).astype(np.float32)
    model.fit(x, x[:, :1], epochs=2, batch_size=16, verbose=0)
    runs = np.stack([model.predict(x[:4], verbose=0) for _ in range(20)])
    assert runs.std(axis=0).min() > 0.0


def test_batchnorm_called_with_training_false_stays_in_inference_during_fit():
    """A frozen-feature-extractor BatchNormalization (transfer learning): training=False keeps its
    moving statistics fixed and normalizes by them in fit too."""
    keras.utils.set_random_seed(7)
    inp = keras.Input((3,))
    bn = L.BatchNormalization()
    dense = L.Dense(1)
    model = keras.Model(inp, dense(bn(inp, training=False)))
    bn.set_weights([np.array([1.0, 2.0, 0.5], np.float32), np.array([0.0, 1.0, -1.0], np.float32),
                    np.array([0.5, -0.5, 1.0], np.float32), np.array([2.0, 1.0, 4.0], np.float32)])
    model.compile(loss="mse", optimizer="sgd")
    x = np.random.default_rng(7).standard_normal((32, 3)).astype(np.float32)
    y = np.random.default_rng(8).standard_normal((32, 1)).astype(np.float32)
    gamma, beta, mean, var = bn.get_weights()
    kernel, bias = dense.get_weights()
    normalized = (x - mean) / np.sqrt(var + 1e-3) * gamma + beta
    loss, _ = loss_and_gradients(model, x, y, training=True)      # the layers in training mode
    np.testing.assert_allclose(loss, np.mean((normalized @ kernel + bias - y) ** 2), rtol=1e-5)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(bn.get_weights()[2], mean)
    np.testing.assert_array_equal(bn.get_weights()[3], var)
    assert not np.array_equal(bn.get_weights()[0], gamma)         # gamma and beta still train


def test_training_false_dropout_is_off_in_fit_and_gradients_match():
    keras.utils.set_random_seed(8)
    inp = keras.Input((4,))
    out = L.Dense(2)(L.Dropout(0.5)(L.Dense(6, activation="tanh")(inp), training=False))
    model = keras.Model(inp, out)
    model.compile(loss="mse", optimizer="sgd")
    x = np.random.default_rng(9).standard_normal((10, 4)).astype(np.float32)
    y = np.random.default_rng(10).standard_normal((10, 2)).astype(np.float32)
    in_training = loss_and_gradients(model, x, y, training=True)
    in_inference = loss_and_gradients(model, x, y, training=False)
    assert in_training[0] == in_inference[0] and np.array_equal(in_training[1], in_inference[1])
    assert_gradient_matches(model, x, y)


def test_own_layer_called_with_training_passes_it_to_its_layers():
    """As Keras's call context: a layer called inside one given training= takes it."""
    class Block(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.drop = L.Dropout(0.5)

        def call(self, inputs):
            return self.drop(inputs) * 2.0

    keras.utils.set_random_seed(9)
    inp = keras.Input((400,))
    model = keras.Model(inp, Block()(inp, training=True))
    x = np.ones((2, 400), np.float32)
    out = model.predict(x, verbose=0)
    assert set(np.unique(out)) == {np.float32(0.0), np.float32(4.0)} and _kept_fraction_ok(out, 0.5)
    plain = keras.Model(inp, Block()(inp))
    np.testing.assert_array_equal(plain.predict(x, verbose=0), 2.0 * x)


def test_training_argument_is_saved_and_loaded(tmp_path):
    keras.utils.set_random_seed(10)
    inp = keras.Input((200,))
    model = keras.Model(inp, L.Dropout(0.5)(L.Dense(200)(inp), training=True))
    nodes = [layer["inbound_nodes"] for layer in model.get_config()["layers"] if layer["class_name"] == "Dropout"]
    assert nodes[0][0]["kwargs"] == {"training": True}
    model.save(tmp_path / "mc.keras")
    loaded = keras.saving.load_model(tmp_path / "mc.keras")
    out = loaded.predict(np.ones((3, 200), np.float32), verbose=0)
    assert np.mean(out == 0.0) > 0.3


def test_a_files_training_false_is_not_taken_as_fixed():
    """Keras 3 writes ``training: false`` on nodes whose call never fixed it (and ignores it in fit):
    loading such a node must leave the layer following fit's mode, or its dropout silently stops."""
    inp = keras.Input((200,))
    config = keras.Model(inp, L.Dropout(0.5)(L.Dense(200)(inp))).get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "Dropout":
            layer["inbound_nodes"][0]["kwargs"] = {"training": False, "mask": None}
    loaded = keras.Model.from_config(config)
    x = np.ones((3, 200), np.float32)
    assert np.mean(np.asarray(loaded(x, training=True)) == 0.0) > 0.3


def test_training_must_be_a_bool():
    with pytest.raises(TypeError, match="training must be True, False or None"):
        L.Dropout(0.5)(keras.Input((3,)), training="yes")


def test_eager_layer_call_in_training_mode():
    """layer(x, training=True) on arrays: Dropout drops (a spread), BatchNormalization normalizes
    by the batch's statistics and, as Keras 3 in an eager call, updates its moving ones once."""
    keras.utils.set_random_seed(11)
    x = np.full((5, 300), 2.0, np.float32)
    drop = L.Dropout(0.3)
    out = drop(x, training=True)
    assert set(np.unique(out)) == {np.float32(0.0), np.float32(2.0 / 0.7)} and _kept_fraction_ok(out, 0.3)
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(drop(x, training=False), x)

    bn = L.BatchNormalization(momentum=0.9)
    data = np.random.default_rng(12).standard_normal((40, 3)).astype(np.float32) * 3 + 1
    out = bn(data, training=True)
    expected = (data - data.mean(axis=0)) / np.sqrt(data.var(axis=0) + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    _, _, moving_mean, moving_var = bn.get_weights()
    np.testing.assert_allclose(moving_mean, 0.1 * data.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(moving_var, 0.9 + 0.1 * data.var(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn(data), (data - moving_mean) / np.sqrt(moving_var + 1e-3), rtol=1e-5, atol=1e-5)
