"""Losses written with keras.ops: traced into the compiled program and differentiated there."""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn import ops

from _util import assert_gradient_matches
from test_custom_layers import Linear

REF = Path(__file__).parent / "keras_reference"
ARRAYS = np.load(REF / "ops_reference.npz")
INFO = json.loads((REF / "ops_reference.json").read_text())
L = keras.layers


def custom_mean_squared_error(y_true, y_pred):
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


class OpsHuber(keras.losses.Loss):
    """Huber written with ops in a Loss subclass's call (fastnn's built-in Huber is a compiled loss)."""

    def __init__(self, delta=1.0, name="ops_huber"):
        super().__init__(name=name)
        self.delta = delta

    def call(self, y_true, y_pred):
        err = ops.abs(y_pred - y_true)
        quadratic = 0.5 * ops.square(err)
        linear = self.delta * err - 0.5 * self.delta ** 2
        return ops.mean(ops.where(err <= self.delta, quadratic, linear), axis=-1)


def _regression(seed=0, n=48, features=4, outputs=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] * x[:, 3]], axis=1)[:, :outputs].astype(np.float32)
    return x, y


def _dense_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([L.Input((4,)), L.Dense(6, activation="tanh"), L.Dense(2)])


def test_keras_parity_custom_layer_and_ops_loss():
    """The issue's Linear layer and custom_mean_squared_error, 3 epochs from Keras's weights."""
    x, y = ARRAYS["data/x"], ARRAYS["data/y"]
    model = keras.Sequential([L.Input((6,)), Linear(8), L.Activation("tanh"), Linear(2)])
    model.set_weights([ARRAYS[f"linear/init/{i}"] for i in range(4)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), loss=custom_mean_squared_error)
    hist = model.fit(x[:64], y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                     validation_data=(x[64:], y[64:]))
    ref = INFO["linear"]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(hist.history[key], ref["history"][key], rtol=1e-5)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, ARRAYS[f"linear/final/{i}"], rtol=1e-5, atol=2e-6)
    assert model.evaluate(x[64:], y[64:], verbose=0) == pytest.approx(ref["evaluate"], rel=1e-5)


@pytest.mark.parametrize("builtin, own", [
    ("mse", custom_mean_squared_error),
    ("mse", lambda t, p: ops.mean(ops.square(p - t))),              # axis=None: Keras's mean over everything
    (keras.losses.Huber(delta=0.5), OpsHuber(delta=0.5)),            # the compiled own-loss route against ops
])
def test_ops_loss_trains_as_the_builtin(builtin, own):
    x, y = _regression()
    sw = np.linspace(0.5, 1.5, len(x)).astype(np.float32)
    weights = []
    for loss in (builtin, own):
        model = _dense_model()
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=loss, metrics=["mae"])
        hist = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, sample_weight=sw)
        weights.append((model.get_weights(), hist.history))
    (w_a, h_a), (w_b, h_b) = weights
    for a, b in zip(w_a, w_b):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_b["loss"], h_a["loss"], rtol=1e-5)
    np.testing.assert_allclose(h_b["mae"], h_a["mae"], rtol=1e-6)


def test_ops_loss_gradient_matches_finite_differences():
    def log_cosh(y_true, y_pred):
        d = y_pred - y_true
        return ops.mean(d + ops.softplus(-2.0 * d) - 0.6931472, axis=-1)

    x, y = _regression(1, n=6)
    model = _dense_model(1)
    model.compile(loss=log_cosh, optimizer="sgd")
    assert_gradient_matches(model, x, y)
    d = model.predict(x, verbose=0).astype(np.float64) - y
    assert model.evaluate(x, y, verbose=0) == pytest.approx(np.mean(np.log(np.cosh(d))), rel=1e-5)


def test_ops_loss_on_one_of_two_outputs_reads_its_own_targets():
    x, y = _regression(2)
    runs = []
    for second in ("mse", custom_mean_squared_error):
        keras.utils.set_random_seed(2)
        inp = keras.Input((4,))
        h = L.Dense(5, activation="relu")(inp)
        a, b = L.Dense(1, name="a")(h), L.Dense(2, name="b")(h)
        model = keras.Model(inp, [a, b])
        model.compile(optimizer="adam", loss=["mse", second], loss_weights=[1.0, 0.5])
        model.fit(x, [y[:, :1] * 3, y], epochs=2, batch_size=8, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_ops_loss_called_on_arrays_and_refusals():
    loss = keras.losses.get(custom_mean_squared_error)
    t, p = np.array([[0.0, 1.0], [2.0, 2.0]]), np.array([[1.0, 1.0], [2.0, 0.0]])
    assert loss(t, p) == pytest.approx(np.mean([0.5, 2.0]))
    huber = np.where(np.abs(p - t) <= 1.0, 0.5 * (p - t) ** 2, np.abs(p - t) - 0.5).mean(axis=-1)
    assert OpsHuber(delta=1.0)(t, p) == pytest.approx(np.mean(huber))
    assert keras.losses.get(OpsHuber(delta=1.0))(t, p) == pytest.approx(np.mean(huber))

    def numpy_loss(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)
    with pytest.raises(ValueError, match="numpy_loss.*could not be traced with keras.ops"):
        _dense_model().compile(loss=numpy_loss, optimizer="sgd")

    def batch_sum(y_true, y_pred):
        return ops.sum(ops.square(y_true - y_pred))
    model = _dense_model()
    model.compile(loss=batch_sum, optimizer="sgd")
    with pytest.raises(ValueError, match="keras.ops.sum.*only ops.mean may reduce over the batch"):
        model.fit(*_regression(), verbose=0)
