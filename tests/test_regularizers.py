"""Weight penalties: Keras 3's definitions, their place in the loss and in the gradient.

Reference values are written out in NumPy float64: the penalty is
``l1 * sum|w| + l2 * sum w^2`` (no 1/2), Keras adds it to every batch's loss
(so History, ``evaluate`` and ``val_loss`` include it) and only for the
weights of trainable layers. Gradients are compared with central finite
differences (step 1e-5) of the float64 loss; the float32 kernels agree to a
few ulps of the O(1) gradient, hence the 1e-4 relative tolerance.
"""
import numpy as np
import pytest

import fastnn as keras
from fastnn import regularizers
from fastnn.models.training import loss_and_gradients


def _data(rows=6, cols=4, outs=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (rows, cols)).astype(np.float32), rng.normal(0, 1, (rows, outs)).astype(np.float32)


def _penalty(w, l1=0.0, l2=0.0):
    w = np.asarray(w, dtype=np.float64)
    return l1 * np.abs(w).sum() + l2 * np.square(w).sum()


def test_keras_defaults_names_and_configs():
    assert regularizers.l1 is regularizers.L1 and regularizers.l2 is regularizers.L2
    assert regularizers.l1_l2 is regularizers.L1L2
    assert regularizers.L1().factors() == (0.01, 0.0)
    assert regularizers.L2().factors() == (0.0, 0.01)
    assert regularizers.L1L2().factors() == (0.0, 0.0)          # the class defaults, as Keras 3
    assert regularizers.get("l1_l2").factors() == (0.01, 0.01)  # the string defaults Keras documents
    assert regularizers.get("l2").factors() == (0.0, 0.01)
    assert regularizers.get("L1").factors() == (0.01, 0.0)
    assert regularizers.get(None) is None
    reg = regularizers.l1_l2(l1=0.2, l2=0.3)
    again = regularizers.deserialize(regularizers.serialize(reg))
    assert type(again) is regularizers.L1L2 and again.factors() == (0.2, 0.3)
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    assert reg(w) == pytest.approx(_penalty(w, 0.2, 0.3), rel=1e-6)
    assert regularizers.L2(2.0)(np.ones((5, 5))) == pytest.approx(50.0)   # Keras's docstring example


def test_bad_regularizers_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="l2"):
        regularizers.L2(-1.0)
    with pytest.raises(ValueError, match="l1"):
        regularizers.L1(float("nan"))
    with pytest.raises(ValueError, match="Unknown regularizer"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="compiled code"):
        keras.layers.Dense(3, kernel_regularizer=lambda w: 0.01 * np.sum(w ** 2))
    with pytest.raises(ValueError, match="activity_regularizer"):
        keras.layers.Dense(3, activity_regularizer="l2")


def _regularized_model(kernel_reg, bias_reg=None, seed=1):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(4,)),
                              keras.layers.Dense(5, activation="tanh", kernel_regularizer=kernel_reg,
                                                 bias_regularizer=bias_reg),
                              keras.layers.Dense(3, kernel_regularizer=regularizers.l2(0.05))])
    model.layers[0].set_weights([model.layers[0].get_weights()[0], np.linspace(-0.5, 0.5, 5)])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    return model


def _loss64(model, x, y, factors):
    """Mean squared error of the two-layer model plus its penalties, float64, from a flat buffer."""
    base = model._params.__array_interface__["data"][0]
    slices = [((w.value.__array_interface__["data"][0] - base) // 4, w.size, w.shape) for w in model.weights]

    def loss(flat):
        k1, b1, k2, b2 = [flat[o:o + s].reshape(shape) for o, s, shape in slices]
        data = np.mean((np.tanh(x.astype(np.float64) @ k1 + b1) @ k2 + b2 - y) ** 2)
        return data + sum(_penalty(w, *f) for w, f in zip((k1, b1, k2), factors))
    return loss


@pytest.mark.parametrize("kernel_reg,bias_reg,factors", [
    (regularizers.l1(0.03), None, [(0.03, 0.0), (0.0, 0.0)]),
    (regularizers.l2(0.04), regularizers.l1(0.02), [(0.0, 0.04), (0.02, 0.0)]),
    (regularizers.l1_l2(l1=0.01, l2=0.02), regularizers.l2(), [(0.01, 0.02), (0.0, 0.01)]),
])
def test_penalty_is_in_the_loss_and_its_gradient(kernel_reg, bias_reg, factors):
    x, y = _data()
    model = _regularized_model(kernel_reg, bias_reg)
    loss64 = _loss64(model, x, y, factors + [(0.0, 0.05)])
    flat = model._params.astype(np.float64)
    loss, grad = loss_and_gradients(model, x, y)
    assert loss == pytest.approx(loss64(flat), rel=1e-6)
    ref = np.zeros_like(flat)
    h = 1e-5
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        ref[i] = (loss64(up) - loss64(down)) / (2 * h)
    scale = np.abs(ref).max()
    assert np.abs(grad - ref).max() <= 1e-4 * scale
    # The L1 term's gradient is l1 * sign(w): compare with the unregularized model's gradient.
    plain = _regularized_model(None)
    plain.set_weights(model.get_weights())
    _, grad_plain = loss_and_gradients(plain, x, y)
    k1 = model.layers[0].get_weights()[0].reshape(-1)
    l1, l2 = factors[0]
    np.testing.assert_allclose(grad[:k1.size] - grad_plain[:k1.size], l1 * np.sign(k1) + 2 * l2 * k1,
                               rtol=1e-4, atol=1e-6)


def test_history_loss_evaluate_and_val_loss_include_the_penalty():
    x, y = _data(rows=10)
    model = _regularized_model(regularizers.l2(0.1))
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.0))   # weights stay put
    k1, b1, k2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    data = np.mean((np.tanh(x @ k1 + b1) @ k2 + b2 - y) ** 2)
    penalty = _penalty(k1, 0, 0.1) + _penalty(k2, 0, 0.05)
    assert penalty > 0.05
    history = model.fit(x, y, batch_size=4, epochs=1, validation_data=(x, y), verbose=0)
    assert history.history["loss"][0] == pytest.approx(data + penalty, rel=1e-5)
    assert history.history["val_loss"][0] == pytest.approx(data + penalty, rel=1e-5)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(data + penalty, rel=1e-5)


def test_one_sgd_step_follows_the_regularized_gradient():
    x, y = _data(rows=6)
    model = _regularized_model(regularizers.l1_l2(l1=0.02, l2=0.03))
    w0 = model._params.copy()
    _, grad = loss_and_gradients(model, x, y)
    history = model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(model._params, w0 - np.float32(0.1) * grad, rtol=1e-5, atol=1e-7)
    loss0, _ = loss_and_gradients(_regularized_model(regularizers.l1_l2(l1=0.02, l2=0.03)), x, y)
    assert history.history["loss"][0] == pytest.approx(loss0, rel=1e-6)


def test_frozen_layer_contributes_no_penalty():
    x, y = _data()
    model = _regularized_model(regularizers.l2(0.5))
    k2 = model.layers[1].get_weights()[0].astype(np.float64)
    model.layers[0].trainable = False
    loss, _ = loss_and_gradients(model, x, y)
    k1, b1, _, b2 = [w.astype(np.float64) for w in model.get_weights()]
    data = np.mean((np.tanh(x @ k1 + b1) @ k2 + b2 - y) ** 2)
    assert loss == pytest.approx(data + _penalty(k2, 0, 0.05), rel=1e-6)


def test_regularizers_round_trip_through_the_layer_config():
    layer = keras.layers.Dense(4, kernel_regularizer=regularizers.l1_l2(l1=0.1, l2=0.2), bias_regularizer="l2")
    again = keras.layers.Dense.from_config(layer.get_config())
    assert again.kernel_regularizer.factors() == (0.1, 0.2)
    assert again.bias_regularizer.factors() == (0.0, 0.01)
