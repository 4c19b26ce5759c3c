"""Users' own layers written the Keras 3 way: build / add_weight / call with keras.ops,
traced into the model's graph and trained compiled."""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn import ops

from _util import assert_gradient_matches

REF = Path(__file__).parent / "keras_reference"
ARRAYS = np.load(REF / "ops_reference.npz")
INFO = json.loads((REF / "ops_reference.json").read_text())
L = keras.layers


class Linear(keras.layers.Layer):
    """The Keras guide's layer (as in make_ops_reference.py)."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return keras.ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Block(keras.layers.Layer):
    """A layer of layers and ops: Dense, a scale weight with an L2 penalty, a residual."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = L.Dense(units, activation="tanh")
        self.units = units

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", regularizer=keras.regularizers.L2(0.1),
                                     name="scale")

    def call(self, inputs, training=None):
        h = self.dense(inputs)
        return inputs + ops.sigmoid(h * self.scale) - 0.5


def _data():
    x, y = ARRAYS["data/x"], ARRAYS["data/y"]
    return x, y, [ARRAYS[f"linear/init/{i}"] for i in range(4)]


def test_linear_layer_trains_as_keras_dense_does():
    """Keras 3 trains Linear and Dense to the same weights (its reference); so must fastnn."""
    x, y, init = _data()
    keras.backend.clear_session()
    model = keras.Sequential([L.Input((6,)), Linear(8), L.Activation("tanh"), Linear(2)])
    assert [l.name for l in model.layers] == ["linear", "activation", "linear_1"]
    assert [w.name.split("/")[-1] for w in model.weights] == [r["name"] for r in INFO["linear"]["weights_init"]]
    assert model.count_params() == 74
    model.set_weights(init)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), loss="mse")
    hist = model.fit(x[:64], y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                     validation_data=(x[64:], y[64:]))
    np.testing.assert_allclose(hist.history["loss"], INFO["builtin"]["history"]["loss"], rtol=1e-5)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, ARRAYS[f"builtin/final/{i}"], rtol=1e-5, atol=2e-6)
    # outputs carry the weights' float32 round-off (7e-7) through two layers of 8 and 2 units
    np.testing.assert_allclose(model.predict(x[64:], verbose=0), ARRAYS["builtin/predict_valid"], rtol=1e-5,
                               atol=1e-5)


def test_linear_equals_dense_in_fastnn():
    x, y, init = _data()
    runs = []
    for layers in ([Linear(8), L.Activation("tanh"), Linear(2)], [L.Dense(8), L.Activation("tanh"), L.Dense(2)]):
        model = keras.Sequential([L.Input((6,)), *layers])
        model.set_weights(init)
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_layer_of_layers_gradient_and_weights():
    keras.backend.clear_session()
    inp = keras.Input(shape=(4,))
    block = Block(4)
    out = Linear(2)(block(block(inp)))       # called twice: its weights collect both calls' gradients
    model = keras.Model(inp, out)
    assert [l.name for l in model.layers] == ["input_layer", "block", "linear"]
    assert [w.name for w in block.weights] == ["block/scale", "dense/kernel", "dense/bias"]
    assert len(model.trainable_weights) == 5
    model.compile(loss="mse", optimizer="sgd")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((6, 2)).astype(np.float32)
    assert_gradient_matches(model, x, y)
    # eager call on arrays runs call with NumPy: the same values as the compiled model
    np.testing.assert_allclose(model.layers[2](block(block(x))), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_frozen_layer_and_non_trainable_weight_stay():
    class Shift(keras.layers.Layer):
        def build(self, input_shape):
            self.shift = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=False)
            self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.gain - self.shift

    shift = Shift()
    frozen = Linear(3)
    model = keras.Sequential([L.Input((3,)), shift, frozen, L.Dense(1)])
    frozen.trainable = False
    model.compile(loss="mse", optimizer="sgd")
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(1).standard_normal((32, 3)).astype(np.float32)
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    after = model.get_weights()
    assert np.array_equal(after[0], before[0])          # shift: trainable=False
    assert not np.array_equal(after[1], before[1])      # gain trains
    assert np.array_equal(after[2], before[2]) and np.array_equal(after[3], before[3])     # frozen Linear
    assert model.non_trainable_weights[0] is shift.shift
    assert sum(w.size for w in model.trainable_weights) == 3 + 4


def test_subclass_of_builtin_runs_its_call():
    class Doubled(L.Dense):
        def call(self, inputs):
            return super().call(inputs) * 2.0

    keras.utils.set_random_seed(0)
    layer = Doubled(3)
    model = keras.Sequential([L.Input((4,)), layer])
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    kernel, bias = layer.get_weights()
    expected = 2.0 * (x @ kernel + bias)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)


def test_subclassed_model_with_ops_and_weights_roundtrip(tmp_path):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = Linear(5)
            self.out = L.Dense(1)

        def call(self, inputs):
            return self.out(ops.relu(self.hidden(inputs)) + ops.mean(inputs, axis=-1, keepdims=True))

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    net = Net()
    net.compile(loss="mse", optimizer=keras.optimizers.Adam(0.01))
    first = net.evaluate(x, y, verbose=0)
    net.fit(x, y, epochs=20, verbose=0)
    assert net.evaluate(x, y, verbose=0) < first / 2
    path = tmp_path / "net.weights.h5"
    net.save_weights(path)
    other = Net()
    other.build((None, 3))
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x, verbose=0), net.predict(x, verbose=0))


def test_add_weight_checks():
    layer = Linear(2)
    with pytest.raises(ValueError, match="float32"):
        layer.add_weight(shape=(2,), dtype="float64")
    with pytest.raises(ValueError, match="Could not interpret constraint"):
        layer.add_weight(shape=(2,), constraint=lambda w: w)
