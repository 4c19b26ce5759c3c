"""Own objects elsewhere in the API: activation= a layer or an ops function; whole-model files with
custom_objects or registered classes (taken only from what this process offers)."""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn import ops

from _util import assert_gradient_matches
from test_custom_layers import Linear
from test_custom_losses import custom_mean_squared_error

REF = Path(__file__).parent / "keras_reference"
ARRAYS = np.load(REF / "ops_reference.npz")
L = keras.layers


def soft_leaky(x):
    return ops.where(x > 0, x, 0.1 * x)


@pytest.mark.parametrize("activation", [L.LeakyReLU(negative_slope=0.1), soft_leaky], ids=["layer", "function"])
def test_activation_layer_or_function(activation):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), L.Dense(5, activation=activation), L.Activation(soft_leaky),
                              L.Dense(1)])
    assert [type(l).__name__ for l in model.layers] == ["Dense", "Activation", "Dense"]
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    kernel, bias = model.layers[0].get_weights()
    z = x @ kernel + bias
    hidden = np.where(z > 0, z, 0.1 * z)
    np.testing.assert_allclose(model.layers[0](x), hidden, rtol=1e-6, atol=1e-6)
    k2, b2 = model.layers[2].get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), np.where(hidden > 0, hidden, 0.1 * hidden) @ k2 + b2,
                               rtol=1e-5, atol=1e-6)
    model.compile(loss="mse", optimizer="sgd")
    assert_gradient_matches(model, x, x[:, :1])


def test_load_keras_file_with_custom_objects():
    """Keras 3 wrote this file with its Linear registered as 'fastnn_reference>Linear' and the loss by name."""
    path = REF / "models" / "ops_linear.keras"
    with pytest.raises(ValueError, match="custom_objects"):
        keras.saving.load_model(path)
    model = keras.saving.load_model(path, custom_objects={"Linear": Linear,
                                                          "custom_mean_squared_error": custom_mean_squared_error})
    assert [type(l).__name__ for l in model.layers] == ["Linear", "Activation", "Linear"]
    x = ARRAYS["data/x"]
    np.testing.assert_allclose(model.predict(x[64:], verbose=0), ARRAYS["linear/predict_valid"], rtol=1e-6,
                               atol=1e-6)
    assert model.optimizer.iterations == 12     # 3 epochs of 4 batches, restored with the optimizer state
    model.fit(x[:64], ARRAYS["data/y"][:64], epochs=1, batch_size=16, verbose=0)     # the loss traced back in


def test_registered_class_round_trip(tmp_path):
    @keras.saving.register_keras_serializable(package="tests")
    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.g = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.g * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), Scale(3.0), L.Dense(2)])
    model.compile(loss=custom_mean_squared_error, optimizer="adam")
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    model.fit(x, x[:, :2], epochs=2, verbose=0)
    path = tmp_path / "scale.keras"
    model.save(path)
    record = json.loads(__import__("zipfile").ZipFile(path).read("config.json"))
    assert record["config"]["layers"][1]["registered_name"] == "tests>Scale"
    back = keras.saving.load_model(path, custom_objects={"custom_mean_squared_error": custom_mean_squared_error})
    assert back.layers[0].factor == 3.0
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="Unknown loss 'custom_mean_squared_error'"):
        keras.saving.load_model(path)
