"""keras.constraints: Keras 3's formulas, applied after every update inside the compiled loop."""
import numpy as np
import pytest

import fastnn as keras

L = keras.layers
EPS = 1e-7


def _norms(w, axis):
    return np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=axis, keepdims=True))


def test_formulas():
    w = np.array([[3.0, -0.1], [4.0, 0.2]], dtype=np.float32)
    n = _norms(w, 0)        # 5 and 0.2236
    np.testing.assert_allclose(keras.constraints.MaxNorm(2.0)(w), w * (np.minimum(n, 2.0) / (EPS + n)), rtol=1e-6)
    np.testing.assert_allclose(keras.constraints.NonNeg()(w), np.maximum(w, 0))
    np.testing.assert_allclose(keras.constraints.UnitNorm(axis=1)(w), w / (EPS + _norms(w, 1)), rtol=1e-6)
    mm = keras.constraints.MinMaxNorm(0.5, 1.0, rate=0.5)(w)
    np.testing.assert_allclose(mm, w * ((0.5 * np.clip(n, 0.5, 1.0) + 0.5 * n) / (EPS + n)), rtol=1e-6)


@pytest.mark.parametrize("constraint", [keras.constraints.max_norm(0.5), keras.constraints.non_neg(),
                                        keras.constraints.unit_norm(), keras.constraints.min_max_norm(0.2, 0.6),
                                        "non_neg"], ids=["max_norm", "non_neg", "unit_norm", "min_max_norm", "name"])
def test_applied_after_every_update(constraint):
    """One SGD step by hand (the written-out update, then the constraint) equals fit's first step."""
    keras.utils.set_random_seed(0)
    layer = L.Dense(3, kernel_constraint=constraint, bias_constraint="non_neg")
    model = keras.Sequential([keras.Input((4,)), layer])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.5))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    kernel, bias = layer.get_weights()
    err = (x @ kernel + bias - y) * (2.0 / y.size)
    kernel, bias = kernel - 0.5 * (x.T @ err), bias - 0.5 * err.sum(axis=0)
    c = keras.constraints.get(constraint)
    expected = [c(kernel), np.maximum(bias, 0)]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(layer.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    model.fit(x, y, batch_size=2, epochs=2, verbose=0)
    kernel = layer.get_weights()[0]
    np.testing.assert_allclose(c(kernel), kernel, rtol=1e-5, atol=1e-6)      # still satisfies it


def test_add_weight_constraint_and_config():
    class Positive(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2), constraint=keras.constraints.NonNeg())

        def call(self, inputs):
            return keras.ops.matmul(inputs, self.w)

    keras.utils.set_random_seed(1)
    layer = Positive()
    model = keras.Sequential([keras.Input((3,)), layer])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(1.0))
    x = np.random.default_rng(1).standard_normal((16, 3)).astype(np.float32)
    model.fit(x, -np.abs(x[:, :2]) * 3, epochs=3, verbose=0)
    assert (layer.get_weights()[0] >= 0).all() and (layer.get_weights()[0] == 0).any()
    config = L.Dense(2, kernel_constraint=keras.constraints.MaxNorm(3.0, axis=0)).get_config()
    assert config["kernel_constraint"]["class_name"] == "MaxNorm"
    assert L.Dense.from_config(config).kernel_constraint.max_value == 3.0
    with pytest.raises(ValueError, match="Could not interpret constraint"):
        L.Dense(2, kernel_constraint=lambda w: w)
