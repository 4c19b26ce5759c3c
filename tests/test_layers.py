"""BatchNormalization, Dropout, LeakyReLU, Reshape, Activation and frozen layers.

Every check compares with a written-out formula: NumPy float64 forward passes
for outputs, and central finite differences of that float64 forward pass for
gradients (step 1e-5, so truncation and round-off of the reference are below
1e-8 and the comparison measures the float32 kernels alone: their errors are
a few float32 ulps of the O(1) gradients, hence the 1e-4 relative tolerance).
Training-mode outputs are observed through an own metric, which the compiled
loop feeds with exactly the predictions it trained on.
"""
import numpy as np
import pytest

import fastnn as keras
from fastnn.models.training import loss_and_gradients

GRAD_RTOL = 1e-4


def _data(rows=6, cols=4, outs=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (rows, cols)).astype(np.float32), rng.normal(0, 1, (rows, outs)).astype(np.float32)


def _recorder():
    """An own metric that keeps every chunk of training predictions it is given."""
    seen = []

    def record(y_true, y_pred):
        seen.append(np.array(y_pred))
        return np.zeros(len(y_pred))
    return record, seen


def _fd_gradient(loss_fn, params, h=1e-5):
    """Central differences of the float64 function ``loss_fn(params)``."""
    params = params.astype(np.float64)
    grad = np.zeros_like(params)
    for i in range(params.size):
        old = params[i]
        params[i] = old + h
        up = loss_fn(params)
        params[i] = old - h
        down = loss_fn(params)
        params[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def _assert_grad_close(grad, ref):
    scale = np.abs(ref).max()
    assert scale > 1e-2, "the loss barely depends on the weights; the check would be vacuous"
    worst = int(np.abs(grad - ref).argmax())
    assert abs(grad[worst] - ref[worst]) <= GRAD_RTOL * scale, (
        f"gradient entry {worst}: {grad[worst]:.7g} vs finite differences {ref[worst]:.7g} (max {scale:.3g})")


def _unpack(model, flat):
    """Per-weight arrays of the model (Keras order) read from a flat float64 copy of its buffer."""
    base = model._params.__array_interface__["data"][0]
    out = []
    for w in model.weights:
        off = (w.value.__array_interface__["data"][0] - base) // 4
        out.append(flat[off:off + w.size].reshape(w.shape))
    return out


def _bn_ref(x, gamma, beta, mean, var, eps=1e-3):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


# -- BatchNormalization ---------------------------------------------------------------------------------------

def test_batchnorm_weights_in_keras_order_and_summary_counts_moving_statistics_as_non_trainable():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(5), keras.layers.BatchNormalization()])
    bn = model.layers[1]
    assert bn.name == "batch_normalization"
    assert [w.name.split("/")[-1] for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    gamma, beta, mean, var = bn.get_weights()
    np.testing.assert_array_equal(gamma, np.ones(5))
    np.testing.assert_array_equal(beta, np.zeros(5))
    np.testing.assert_array_equal(mean, np.zeros(5))
    np.testing.assert_array_equal(var, np.ones(5))
    assert [w.name for w in bn.trainable_weights] == ["batch_normalization/gamma", "batch_normalization/beta"]
    assert bn.count_params() == 20
    text = []
    model.summary(print_fn=text.append)
    # a name wider than its column wraps onto the next line, keeping the columns aligned (as Keras 2 prints it)
    assert " batch_normalization (Batch  (None, 5)" in text[0] and "\n Normalization)\n" in text[0]
    assert "Total params: 45" in text[0] and "Trainable params: 35" in text[0]
    assert "Non-trainable params: 10" in text[0]
    assert (bn.momentum, bn.epsilon, bn.center, bn.scale) == (0.99, 1e-3, True, True)


def test_batchnorm_training_forward_and_moving_statistics_follow_keras():
    x, y = _data(rows=8, cols=5, outs=5)
    x = x * 3 + 1     # statistics far from the initial moving ones
    gamma = np.linspace(0.5, 1.5, 5).astype(np.float32)
    beta = np.linspace(-1, 1, 5).astype(np.float32)
    record, seen = _recorder()
    model = keras.Sequential([keras.Input(shape=(5,)), keras.layers.BatchNormalization()])
    bn = model.layers[0]
    bn.set_weights([gamma, beta, np.zeros(5), np.ones(5)])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.0), metrics=[record])
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    moving_mean, moving_var = np.zeros(5), np.ones(5)
    outputs = np.concatenate(seen)
    for lo in (0, 4):
        batch = x[lo:lo + 4].astype(np.float64)
        mean, var = batch.mean(axis=0), batch.var(axis=0)          # biased, ddof=0
        np.testing.assert_allclose(outputs[lo:lo + 4], _bn_ref(batch, gamma, beta, mean, var), rtol=1e-5, atol=1e-5)
        moving_mean = moving_mean * 0.99 + mean * 0.01
        moving_var = moving_var * 0.99 + var * 0.01
    _, _, got_mean, got_var = bn.get_weights()
    np.testing.assert_allclose(got_mean, moving_mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_var, moving_var, rtol=1e-5)


def test_batchnorm_inference_uses_moving_statistics():
    x, y = _data(rows=7, cols=3, outs=3)
    weights = [np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3]), np.array([0.3, -0.1, 0.2]),
               np.array([0.5, 2.0, 0.05])]
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.BatchNormalization(epsilon=0.01)])
    model.layers[0].set_weights(weights)
    model.compile(loss="mse", optimizer="sgd")
    expected = _bn_ref(x.astype(np.float64), *weights, eps=0.01)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(np.mean((expected - y) ** 2), rel=1e-5)


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients_match_finite_differences(center, scale, training):
    x, y = _data(rows=6, cols=4, outs=3, seed=3)
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(5),
                              keras.layers.BatchNormalization(center=center, scale=scale),
                              keras.layers.Dense(3, activation="tanh")])
    model.compile(loss="mse", optimizer="sgd")
    bn = model.layers[1]
    rng = np.random.default_rng(5)
    bn.set_weights([rng.uniform(0.5, 1.5, 5) if w.name.endswith(("gamma", "moving_variance")) else
                    rng.uniform(-0.5, 0.5, 5) for w in bn.weights])

    def loss64(flat):
        ws = _unpack(model, flat)
        k1, b1 = ws[0], ws[1]
        bn_w = dict(zip([w.name.split("/")[-1] for w in bn.weights], ws[2:2 + len(bn.weights)]))
        k2, b2 = ws[-2], ws[-1]
        h = x.astype(np.float64) @ k1 + b1
        mean, var = (h.mean(0), h.var(0)) if training else (bn_w["moving_mean"], bn_w["moving_variance"])
        h = _bn_ref(h, bn_w.get("gamma", 1.0), bn_w.get("beta", 0.0), mean, var)
        return np.mean((np.tanh(h @ k2 + b2) - y) ** 2)

    loss, grad = loss_and_gradients(model, x, y, training=training)
    flat = model._params.astype(np.float64)
    assert loss == pytest.approx(loss64(flat), rel=1e-5)
    n = model._n_trainable
    assert n == 25 + 5 * (center + scale) + 18     # gamma and beta train, the moving statistics do not
    _assert_grad_close(grad[:n], _fd_gradient(loss64, flat)[:n])


def test_batchnorm_gradient_check_leaves_moving_statistics_alone():
    x, y = _data()
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    model.compile(loss="mse", optimizer="sgd")
    before = model.layers[0].get_weights()
    loss_and_gradients(model, x, y, training=True)
    for a, b in zip(before, model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_frozen_batchnorm_runs_on_moving_statistics_and_does_not_change():
    x, y = _data(rows=8, cols=3, outs=3)
    weights = [np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3]), np.array([0.3, -0.1, 0.2]),
               np.array([0.5, 2.0, 0.25])]
    record, seen = _recorder()
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.BatchNormalization(trainable=False)])
    model.layers[0].set_weights(weights)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.5), metrics=[record])
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    for a, b in zip(weights, model.layers[0].get_weights()):
        np.testing.assert_array_equal(np.float32(a), b)
    expected = _bn_ref(x.astype(np.float64), *weights)
    got = np.concatenate(seen)
    # Every training output is the inference formula applied to some row (rows are shuffled).
    for row in got:
        assert np.min(np.abs(expected - row).max(axis=1)) < 1e-5


# -- Dropout --------------------------------------------------------------------------------------------------

def _dropout_training_outputs(rate, x, seed, batch_size=50):
    keras.utils.set_random_seed(seed)
    record, seen = _recorder()
    model = keras.Sequential([keras.Input(shape=(x.shape[1],)), keras.layers.Dropout(rate)])
    model.compile(loss="mse", optimizer="sgd", metrics=[record])
    model.fit(x, np.zeros_like(x), batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return np.concatenate(seen)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_in_training_drops_a_fraction_rate_and_rescales_the_rest(rate):
    x = np.random.default_rng(0).uniform(0.5, 2.0, (200, 100)).astype(np.float32)
    out = _dropout_training_outputs(rate, x, seed=1)
    dropped = out == 0
    kept_scale = np.float32(1.0) / (np.float32(1.0) - np.float32(rate))
    # Kept values are x / (1 - rate) exactly (inverted dropout), dropped ones exactly 0.
    np.testing.assert_array_equal(out[~dropped], x[~dropped] * kept_scale)
    # The dropped count is Binomial(N, rate): 5 standard deviations bound a correct
    # kernel's fraction with probability 1 - 6e-7, and catch a rate off by 0.01.
    n = x.size
    bound = 5 * np.sqrt(rate * (1 - rate) / n)
    assert abs(dropped.mean() - rate) < bound
    # Expected value preserved: mean(out / x) = kept fraction / (1 - rate), std sqrt(rate / ((1-rate) N)).
    assert abs(np.mean(out / x) - 1.0) < 5 * np.sqrt(rate / ((1 - rate) * n))
    # Masks differ between rows and features (no repeated pattern).
    assert len({row.tobytes() for row in dropped[:50]}) == 50


def test_dropout_drops_neighbouring_values_independently():
    """Each value is dropped on its own draw: pairs of neighbours (along the features, and the
    same feature in consecutive rows) are both dropped rate**2 of the time. The masks come from a
    hash of each value's index (kernels/cpu/dropout_masks.py), where a weak mix would show here."""
    rate = 0.5
    out = _dropout_training_outputs(rate, np.ones((400, 100), dtype=np.float32), seed=3)
    dropped = out == 0
    for both in (dropped[:, 1:] & dropped[:, :-1], dropped[1:] & dropped[:-1]):
        # overlapping pairs: variance (r^2 (1 - r^2) + 2 (r^3 - r^4)) / pairs; 5 standard deviations
        bound = 5 * np.sqrt((rate ** 2 * (1 - rate ** 2) + 2 * (rate ** 3 - rate ** 4)) / both.size)
        assert abs(both.mean() - rate ** 2) < bound


def test_dropout_masks_repeat_with_the_same_seed():
    x = np.ones((64, 16), dtype=np.float32)
    a = _dropout_training_outputs(0.5, x, seed=7)
    b = _dropout_training_outputs(0.5, x, seed=7)
    c = _dropout_training_outputs(0.5, x, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_is_identity_in_predict_and_evaluate():
    x, y = _data(rows=20, cols=4, outs=4)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dropout(0.5)])
    model.compile(loss="mse", optimizer="sgd")
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(np.mean((x.astype(np.float64) - y) ** 2), rel=1e-6)
    # Validation during fit runs in inference mode too.
    history = model.fit(x, y, epochs=1, validation_data=(x, y), verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(np.mean((x.astype(np.float64) - y) ** 2), rel=1e-6)
    assert history.history["loss"][0] != pytest.approx(history.history["val_loss"][0], rel=1e-3)


def test_dropout_gradient_in_training_uses_the_same_mask_as_the_forward_pass():
    x, y = _data(rows=5, cols=4, outs=3, seed=2)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dropout(0.4), keras.layers.Dense(3)])
    model.compile(loss="mse", optimizer="sgd")

    def loss32(flat):
        # The compiled forward pass with the same seed draws the same mask.
        saved = model._params.copy()
        model._params[:] = flat
        keras.utils.set_random_seed(11)
        value, _ = loss_and_gradients(model, x, y, training=True)
        model._params[:] = saved
        return value

    keras.utils.set_random_seed(11)
    _, grad = loss_and_gradients(model, x, y, training=True)
    n = model._n_trainable
    ref = _fd_gradient(loss32, model._params.copy(), h=1e-2)
    scale = np.abs(ref[:n]).max()
    # float32 loss differences over a 1e-2 step: about 1e-6 * L / h = 1e-4 relative error.
    assert np.abs(grad[:n] - ref[:n]).max() <= 1e-3 * scale
    # Without training the gradient is the one of the mask-free network.
    _, grad_eval = loss_and_gradients(model, x, y)
    assert not np.allclose(grad_eval[:n], grad[:n])


def test_dropout_outside_training_passes_gradients_through_unchanged():
    # Regression: the backward pass used to multiply by a mask that only training draws (zeros otherwise).
    x, y = _data(rows=5, cols=4, outs=3, seed=2)
    grads = []
    for middle in ([keras.layers.Dropout(0.5)], []):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(6, activation="tanh")] + middle +
                                 [keras.layers.Dense(3)])
        model.compile(loss="mse", optimizer="sgd")
        grads.append(loss_and_gradients(model, x, y))
    assert grads[0][0] == grads[1][0]
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
    assert np.abs(grads[0][1][:30]).max() > 1e-3


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "half", None, float("nan")])
def test_dropout_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        keras.layers.Dropout(rate)


# -- LeakyReLU, Activation, Reshape ---------------------------------------------------------------------------

def test_leaky_relu_layer_defaults_to_keras_slope_and_matches_its_formula():
    layer = keras.layers.LeakyReLU()
    assert layer.negative_slope == 0.3 and layer.name == "leaky_re_lu"
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]], dtype=np.float32)
    for slope, lay in ((0.3, layer), (0.05, keras.layers.LeakyReLU(negative_slope=0.05))):
        model = keras.Sequential([keras.Input(shape=(5,)), lay])
        np.testing.assert_array_equal(model.predict(x, verbose=0), np.where(x > 0, x, np.float32(slope) * x))
    # The activation function keeps Keras's function default, 0.2.
    np.testing.assert_array_equal(keras.activations.leaky_relu(x), np.where(x > 0, x, np.float32(0.2) * x))
    with pytest.warns(UserWarning, match="negative_slope"):
        assert keras.layers.LeakyReLU(alpha=0.1).negative_slope == 0.1
    for bad in (-0.1, None, "x"):
        with pytest.raises(ValueError, match="negative_slope"):
            keras.layers.LeakyReLU(negative_slope=bad)
    assert keras.layers.LeakyReLU(0.1).get_config()["negative_slope"] == 0.1


def test_leaky_relu_gradient_matches_finite_differences():
    x, y = _data(rows=6, cols=4, outs=3, seed=6)
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(6), keras.layers.LeakyReLU(0.25),
                              keras.layers.Dense(3)])
    model.compile(loss="mse", optimizer="sgd")
    k1, b1 = model.layers[0].get_weights()
    assert np.abs(x @ k1 + b1).min() > 1e-3, "a pre-activation sits on the kink; pick another seed"

    def loss64(flat):
        k1, b1, k2, b2 = _unpack(model, flat)
        h = x.astype(np.float64) @ k1 + b1
        return np.mean((np.where(h > 0, h, 0.25 * h) @ k2 + b2 - y) ** 2)

    loss, grad = loss_and_gradients(model, x, y)
    assert loss == pytest.approx(loss64(model._params.astype(np.float64)), rel=1e-5)
    _assert_grad_close(grad, _fd_gradient(loss64, model._params))


def test_activation_layer_applies_the_named_function():
    x, y = _data(rows=5, cols=4, outs=4)
    for name in ("relu", "tanh", "softmax", "leaky_relu"):
        model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Activation(name)])
        np.testing.assert_allclose(model.predict(x, verbose=0), keras.activations.get(name)(x), rtol=1e-6, atol=1e-7)
    # Dense + Activation("softmax") trains exactly as Dense(activation="softmax").
    labels = np.array([0, 1, 2, 1, 0])
    grads = []
    for layers in ([keras.layers.Dense(3), keras.layers.Activation("softmax")], [keras.layers.Dense(3, "softmax")]):
        keras.utils.set_random_seed(9)
        model = keras.Sequential([keras.Input(shape=(4,))] + layers)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
        grads.append(loss_and_gradients(model, x, labels))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-7)


def test_reshape_changes_the_shape_only():
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    model = keras.Sequential([keras.Input(shape=(12,)), keras.layers.Dense(12), keras.layers.Reshape((3, -1))])
    model.layers[0].set_weights([np.eye(12), np.zeros(12)])
    assert model.output_shape == (None, 3, 4)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x.reshape(2, 3, 4))
    flat = keras.Sequential([keras.Input(shape=(2, 6)), keras.layers.Reshape((12,)), keras.layers.Dense(2)])
    kernel, bias = flat.layers[1].get_weights()
    np.testing.assert_allclose(flat.predict(x.reshape(2, 2, 6), verbose=0), x @ kernel + bias, rtol=1e-6)
    with pytest.raises(ValueError, match="cannot reshape"):
        keras.Sequential([keras.Input(shape=(12,)), keras.layers.Reshape((5, -1))])
    with pytest.raises(ValueError, match="at most one -1"):
        keras.Sequential([keras.Input(shape=(12,)), keras.layers.Reshape((-1, -1))])


# -- Frozen layers --------------------------------------------------------------------------------------------

def _two_dense(frozen_first):
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(3)])
    model.layers[0].trainable = not frozen_first
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    return model


def test_frozen_layer_is_not_changed_by_fit_and_shows_as_non_trainable():
    x, y = _data(rows=16)
    model = _two_dense(frozen_first=True)
    first, second = model.layers
    before = [w.copy() for w in model.get_weights()]
    text = []
    model.summary(print_fn=text.append)
    assert "Trainable params: 18" in text[0] and "Non-trainable params: 25" in text[0]
    assert first.trainable_weights == [] and len(first.non_trainable_weights) == 2
    loss, grad = loss_and_gradients(model, x, y)
    assert model._n_trainable == 18 and np.all(grad[18:] == 0)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.array_equal(after[2], before[2])
    # The trainable layer learns what it learns alone on the fixed features tanh(x @ k1 + b1).
    model = _two_dense(frozen_first=True)
    start = model.get_weights()
    features = np.tanh(x.astype(np.float64) @ start[0] + start[1]).astype(np.float32)
    alone = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(3)])
    alone.set_weights(start[2:])
    alone.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    alone.fit(features, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.layers[1].get_weights(), alone.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unfreezing_after_compile_takes_effect_at_the_next_fit():
    x, y = _data(rows=16)
    model = _two_dense(frozen_first=True)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    frozen_kernel = model.layers[0].get_weights()[0]
    model.layers[0].trainable = True
    text = []
    model.summary(print_fn=text.append)
    assert "Trainable params: 43" in text[0]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert not np.array_equal(model.layers[0].get_weights()[0], frozen_kernel)
    model.trainable = False
    kernels = [w.copy() for w in model.get_weights()]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(kernels, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_new_layers_rebuild_from_their_config():
    for layer in (keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False, name="bn"),
                  keras.layers.LeakyReLU(negative_slope=0.1), keras.layers.Dropout(0.25, seed=3)):
        config = layer.get_config()
        again = keras.layers.get_class(type(layer).__name__).from_config(config)
        assert again.get_config() == config
