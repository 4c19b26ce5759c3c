"""add_loss: values of the graph added to the training loss, compiled with their gradients.

A layer's ``self.add_loss(...)`` in a traced ``call`` and ``model.add_loss(...)``
on a functional model's tensors join the loss ``fit`` minimises, ``evaluate``
reports and History records (as Keras 3 adds ``model.losses`` to the compiled
loss); a mean or sum over every axis, the batch's included, is the batch's
value, any other tensor is summed over all its values (Keras's
``ops.sum(loss)``). References: the maths written out in NumPy, and Keras 3's own run
(keras_reference/make_add_loss_reference.py).
"""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn import ops
from fastnn.layers.node import KerasTensor

from _util import assert_gradient_matches

L = keras.layers
FACTOR = 0.05


class ActivityL2(L.Layer):
    """An activity regulariser written with add_loss: FACTOR times the batch's
    mean of each sample's sum of squares (what Keras's activity_regularizer=l2
    adds: the batch's sum of squares over the batch size)."""

    def __init__(self, factor=FACTOR, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        self.add_loss(self.factor * ops.mean(ops.sum(ops.square(inputs), axis=-1)))
        return inputs


class SquaresAdded(L.Layer):
    """add_loss of a tensor that is not a scalar: Keras sums all its values."""

    def call(self, inputs):
        self.add_loss(ops.square(inputs) * 0.01)
        return inputs


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)).astype(np.float32), rng.standard_normal((n, 1)).astype(np.float32)


def _layer_model(seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), L.Dense(4, activation="tanh"), ActivityL2(), L.Dense(1)])


def _numpy_sgd(weights, x, y, lr, epochs, batch):
    """SGD on mse + FACTOR * mean_batch(sum_j h_j^2), h = tanh(x W1 + b1), written out in float64."""
    w1, b1, w2, b2 = [w.astype(np.float64) for w in weights]
    for _ in range(epochs):
        for lo in range(0, len(x), batch):
            xb, yb = x[lo:lo + batch].astype(np.float64), y[lo:lo + batch].astype(np.float64)
            n = len(xb)
            h = np.tanh(xb @ w1 + b1)
            dout = 2.0 * (h @ w2 + b2 - yb) / n
            dh = dout @ w2.T + FACTOR * 2.0 * h / n
            dz = dh * (1.0 - h * h)
            w2, b2 = w2 - lr * h.T @ dout, b2 - lr * dout.sum(axis=0)
            w1, b1 = w1 - lr * xb.T @ dz, b1 - lr * dz.sum(axis=0)
    return [w1, b1, w2, b2]


def _numpy_loss(weights, x, y):
    w1, b1, w2, b2 = [w.astype(np.float64) for w in weights]
    h = np.tanh(x @ w1 + b1)
    return np.mean((h @ w2 + b2 - y) ** 2), FACTOR * np.mean(np.sum(h * h, axis=1))


def test_activity_regulariser_layer_trains_as_the_written_out_maths():
    x, y = _data()
    model = _layer_model()
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    start = model.get_weights()
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    expected = _numpy_sgd(start, x, y, 0.1, 3, 8)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert len(history.history["loss"]) == 3


def test_model_add_loss_on_symbolic_tensors_trains_the_same():
    x, y = _data()
    keras.utils.set_random_seed(1)
    inp = keras.Input((3,))
    h = L.Dense(4, activation="tanh")(inp)
    model = keras.Model(inp, L.Dense(1)(h))
    model.add_loss(FACTOR * ops.mean(ops.sum(ops.square(h), axis=-1)))
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    start = model.get_weights()
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    for got, want in zip(model.get_weights(), _numpy_sgd(start, x, y, 0.1, 3, 8)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_evaluate_and_history_include_the_added_loss():
    x, y = _data()
    model = _layer_model()
    model.compile(loss="mse", optimizer="sgd")
    mse, added = _numpy_loss(model.get_weights(), x, y)
    # batches of 8 and 8: the mean of the batches' means is the mean over the samples
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0), mse + added, rtol=1e-5)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)     # one batch, its loss before the update
    np.testing.assert_allclose(history.history["loss"][0], mse + added, rtol=1e-5)


@pytest.mark.parametrize("form", ["mean", "sum", "tensor", "scaled_sum_of_two", "model"])
def test_added_loss_gradients_match_finite_differences(form):
    keras.utils.set_random_seed(2)
    inp = keras.Input((3,))
    h = L.Dense(4, activation="tanh")(inp)
    if form == "mean":
        h = ActivityL2(0.3)(h)
    elif form == "tensor":
        h = SquaresAdded()(h)
    out = L.Dense(2)(h)
    model = keras.Model(inp, out)
    if form == "sum":
        model.add_loss(0.02 * ops.sum(ops.square(h)))
    elif form == "scaled_sum_of_two":
        model.add_loss(0.5 - ops.mean(out) / 4.0 + ops.mean(ops.square(h)) * 0.3)
    elif form == "model":
        model.add_loss([ops.mean(h), -ops.mean(ops.square(out))])
    model.compile(loss="mse", optimizer="sgd")
    x, y = _data(6, 3)[0], np.random.default_rng(4).standard_normal((6, 2)).astype(np.float32)
    assert_gradient_matches(model, x, y)


def test_tensor_added_loss_is_summed_over_every_value():
    x, y = _data(8, 5)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), L.Dense(4, activation="tanh"), SquaresAdded(), L.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    (w1, b1), (w2, b2) = model.layers[0].get_weights(), model.layers[2].get_weights()
    h = np.tanh(x.astype(np.float64) @ w1 + b1)
    expected = np.mean((h @ w2 + b2 - y) ** 2) + 0.01 * np.sum(h * h)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0), expected, rtol=1e-5)


def test_model_losses_lists_the_terms_and_penalties():
    keras.utils.set_random_seed(4)
    inp = keras.Input((3,))
    dense = L.Dense(4, kernel_regularizer=keras.regularizers.l2(0.1))
    h = ActivityL2()(dense(inp))
    model = keras.Model(inp, L.Dense(1)(h))
    model.add_loss(ops.mean(h))
    losses = model.losses
    assert len(losses) == 3 and all(isinstance(t, KerasTensor) for t in losses[:2])
    np.testing.assert_allclose(losses[2], 0.1 * np.sum(dense.get_weights()[0] ** 2), rtol=1e-6)


def test_eager_call_keeps_the_value_in_layer_losses():
    layer = ActivityL2()
    x = _data(5)[0]
    out = layer(x)
    np.testing.assert_array_equal(out, x)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(layer.losses[0], FACTOR * np.mean(np.sum(x.astype(np.float64) ** 2, axis=1)),
                               rtol=1e-6)
    layer(x[:2])                 # a new call replaces the value
    assert len(layer.losses) == 1


def test_batch_wide_values_are_refused_outside_add_loss():
    inp = keras.Input((3,))
    h = L.Dense(4)(inp)
    with pytest.raises(ValueError, match="keras.ops.exp.*batch axis"):
        ops.exp(ops.mean(h))
    with pytest.raises(ValueError, match="keras.ops.add.*batch axis"):
        ops.mean(h) + ops.sum(h)             # a mean and a sum do not add per sample
    with pytest.raises(ValueError, match="keras.ops.multiply.*batch axis"):
        ops.mean(h) * h
    with pytest.raises(ValueError, match="batch axis"):
        L.Dense(2)(ops.expand_dims(ops.mean(h), -1))
    model = keras.Model(inp, ops.sum(h) * 2.0)
    with pytest.raises(ValueError, match="model output is a reduction over the batch axis"):
        model.predict(np.ones((2, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match="add_loss takes tensors of the model's graph"):
        model.add_loss(1.0)


REF_DIR = Path(__file__).resolve().parent / "keras_reference"


def test_add_loss_layer_trains_as_keras_3_does():
    """Keras 3.15's run (make_add_loss_reference.py): the ActivityL2 layer and Keras's own
    activity_regularizer=l2 give the same weights there, and fastnn's ActivityL2 run matches them."""
    ref = np.load(REF_DIR / "add_loss_reference.npz")
    info = json.loads((REF_DIR / "add_loss_reference.json").read_text())
    x, y = ref["data/x"], ref["data/y"]
    model = keras.Sequential([keras.Input((3,)), L.Dense(4, activation="tanh"), ActivityL2(), L.Dense(1)])
    model.set_weights([ref[f"init/{i}"] for i in range(4)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0), info["layer"]["evaluate_before"],
                               rtol=1e-5)
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], info["layer"]["history"]["loss"], rtol=1e-5)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(ref[f"layer/final/{i}"], ref[f"builtin/final/{i}"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(w, ref[f"layer/final/{i}"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0), info["layer"]["evaluate_after"],
                               rtol=1e-5)
