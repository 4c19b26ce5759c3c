"""Own losses and metrics, sample weights and class weights (Keras 3 semantics).

References are written out in NumPy float64:
- a loss with ``sample_weight`` is ``sum_i w_i * l_i / n`` per batch (Keras's
  ``sum_over_batch_size``), and History's loss is the batch-size-weighted mean
  of the batch losses, i.e. ``sum_i w_i * l_i / N`` over the epoch;
- ``metrics`` are unweighted, ``weighted_metrics`` are ``sum w v / sum w``;
- ``class_weight`` is the sample weight of each sample's class.
Gradients are checked against central finite differences (step 1e-5) of the
float64 loss, to 1e-4 of the largest entry (float32 round-off of O(1) values).
"""
import numpy as np
import pytest

import fastnn as keras
from fastnn import losses
from fastnn.kernels import program as P
from fastnn.models.training import loss_and_gradients


def _data(rows=6, cols=4, outs=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (rows, cols)).astype(np.float32), rng.normal(0, 2, (rows, outs)).astype(np.float32)


def _model(loss, outs=3, lr=0.1, seed=1, **compile_kw):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(outs)])
    model.compile(loss=loss, optimizer=keras.optimizers.SGD(learning_rate=lr), **compile_kw)
    return model


def _outputs64(model, x, flat=None):
    """The two-layer model's outputs in float64 (optionally from a flat parameter vector)."""
    if flat is None:
        k1, b1, k2, b2 = [w.astype(np.float64) for w in model.get_weights()]
    else:
        sizes = np.cumsum([0] + [w.size for w in model.weights])
        k1, b1, k2, b2 = [flat[a:b].reshape(w.shape) for a, b, w in zip(sizes, sizes[1:], model.weights)]
    return np.tanh(x.astype(np.float64) @ k1 + b1) @ k2 + b2


def _check_gradient(model, x, y, per_sample, sample_weight=None):
    """loss_and_gradients against the float64 loss ``mean(w * per_sample(y, outputs))``."""
    w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)

    def loss64(flat):
        return np.mean(w * per_sample(y, _outputs64(model, x, flat)))

    loss, grad = loss_and_gradients(model, x, y, sample_weight=sample_weight)
    flat = model._params.astype(np.float64)
    assert loss == pytest.approx(loss64(flat), rel=1e-5)
    ref = np.zeros_like(flat)
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += 1e-5
        down[i] -= 1e-5
        ref[i] = (loss64(up) - loss64(down)) / 2e-5
    scale = np.abs(ref).max()
    assert scale > 1e-2
    assert np.abs(grad - ref).max() <= 1e-4 * scale


def _huber64(y, p, delta):
    e = p - y
    return np.mean(np.where(np.abs(e) <= delta, 0.5 * e ** 2, delta * np.abs(e) - 0.5 * delta ** 2), axis=-1)


def _log_cosh64(y, p):
    return np.mean(np.log(np.cosh(p - y)), axis=-1)


class LogCosh(losses.Loss):
    """An own loss written as the Loss docstring says: per-sample value and gradient."""

    def value(y_true, y_pred, constants):
        total = 0.0
        for j in range(y_pred.shape[0]):
            total += np.log(np.cosh(y_pred[j] - y_true[j]))
        return total / y_pred.shape[0]

    def gradient(y_true, y_pred, constants, out):
        for j in range(y_pred.shape[0]):
            out[j] = np.tanh(y_pred[j] - y_true[j]) / y_pred.shape[0]


class ScaledMSE(losses.Loss):
    """Mean squared error times a constant from ``constants()``."""

    def __init__(self, factor):
        super().__init__(name="scaled_mse")
        self.factor = factor

    def constants(self):
        return [self.factor]

    def value(y_true, y_pred, c):
        total = 0.0
        for j in range(y_pred.shape[0]):
            total += (y_pred[j] - y_true[j]) ** 2
        return c[0] * total / y_pred.shape[0]

    def gradient(y_true, y_pred, c, out):
        for j in range(y_pred.shape[0]):
            out[j] = 2.0 * c[0] * (y_pred[j] - y_true[j]) / y_pred.shape[0]


# -- own losses -----------------------------------------------------------------------------------------------

def test_own_loss_value_and_gradient_match_the_formula_and_finite_differences():
    x, y = _data()
    loss = LogCosh()
    assert loss.name == "log_cosh" and loss.code == P.CUSTOM
    p = np.random.default_rng(3).normal(0, 1, y.shape)
    assert loss(y, p) == pytest.approx(np.mean(_log_cosh64(y, p)), rel=1e-6)
    _check_gradient(_model(loss), x, y, _log_cosh64)


def test_own_loss_trains_like_the_built_in_it_reimplements():
    x, y = _data(rows=20)
    own, builtin = _model(ScaledMSE(1.0)), _model("mse")
    h_own = own.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    h_builtin = builtin.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_own.history["loss"], h_builtin.history["loss"], rtol=1e-5)
    for a, b in zip(own.get_weights(), builtin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert own.evaluate(x, y, verbose=0) == pytest.approx(builtin.evaluate(x, y, verbose=0), rel=1e-5)
    # The constants reach the compiled functions.
    doubled = _model(ScaledMSE(2.0))
    assert loss_and_gradients(doubled, x, y)[0] == pytest.approx(2 * loss_and_gradients(_model("mse"), x, y)[0],
                                                                 rel=1e-6)


@pytest.mark.parametrize("delta", [1.0, 0.5])
def test_huber_matches_keras_formula_in_value_gradient_and_history(delta):
    x, y = _data(rows=8)
    loss = losses.Huber() if delta == 1.0 else losses.Huber(delta=delta)
    assert loss.name == "huber_loss" and loss.delta == delta
    p = np.random.default_rng(4).normal(0, 2, y.shape)
    assert loss(y, p) == pytest.approx(np.mean(_huber64(y, p, delta)), rel=1e-6)
    np.testing.assert_allclose(losses.huber(y, p, delta), _huber64(y, p, delta), rtol=1e-6)
    model = _model(loss)
    _check_gradient(model, x, y, lambda t, q: _huber64(t, q, delta))
    model.compile(loss=loss, optimizer=keras.optimizers.SGD(learning_rate=0.0))
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(np.mean(_huber64(y, _outputs64(model, x), delta)), rel=1e-5)
    assert isinstance(losses.get("huber"), losses.Huber)


def test_plain_callables_and_incomplete_losses_are_refused_with_the_reason():
    def my_loss(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)
    with pytest.raises(ValueError, match="could not be traced with keras.ops.*Loss subclass.*value/gradient"):
        _model(my_loss)
    with pytest.raises(TypeError, match="gradient"):
        class OnlyValue(losses.Loss):
            def value(y_true, y_pred, c):
                return 0.0
    with pytest.raises(ValueError, match="neither a compiled kernel nor value/gradient"):
        _model(losses.Loss())

    class NotCompilable(losses.Loss):
        def value(y_true, y_pred, c):
            return {"a": 1}

        def gradient(y_true, y_pred, c, out):
            pass
    x, y = _data()
    model = _model(NotCompilable())
    with pytest.raises(ValueError, match="NotCompilable.value could not be compiled by Numba"):
        model.fit(x, y, verbose=0)



class NonNegativeMSE(losses.Loss):
    """Mean squared error that refuses negative targets by raising, as Numba code may."""

    def value(y_true, y_pred, c):
        total = 0.0
        for j in range(y_pred.shape[0]):
            if y_true[j] < 0:
                raise ValueError("NonNegativeMSE: a negative target")
            total += (y_pred[j] - y_true[j]) ** 2
        return total / y_pred.shape[0]

    def gradient(y_true, y_pred, c, out):
        for j in range(y_pred.shape[0]):
            out[j] = 2.0 * (y_pred[j] - y_true[j]) / y_pred.shape[0]


def test_an_error_raised_in_an_own_loss_reaches_the_caller():
    x, y = _data()
    model = _model(NonNegativeMSE())
    model.fit(x, np.abs(y), epochs=1, verbose=0)    # accepted targets train
    for run in (lambda: model.fit(x, y, epochs=1, verbose=0), lambda: model.evaluate(x, y, verbose=0)):
        with pytest.raises(ValueError, match="NonNegativeMSE: a negative target"):
            run()

# -- own metrics ----------------------------------------------------------------------------------------------

def max_abs_error(y_true, y_pred):
    return np.max(np.abs(y_true - y_pred), axis=-1)


class SampleCounter(keras.metrics.Metric):
    """A stateful metric in Keras's style: counts the samples it has seen."""

    def __init__(self, name="samples_seen"):
        super().__init__(name=name)
        self.count = self.add_weight(name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.count.assign_add(len(y_pred))

    def result(self):
        return self.count.numpy()


def test_own_metrics_get_keras_names_and_values_over_training_predictions():
    x, y = _data(rows=10)
    model = _model("mse", lr=0.0, metrics=["mae", max_abs_error, SampleCounter()])
    history = model.fit(x, y, batch_size=4, epochs=2, validation_data=(x[:7], y[:7]), verbose=0)
    assert list(history.history) == ["loss", "mae", "max_abs_error", "samples_seen", "val_loss", "val_mae",
                                     "val_max_abs_error", "val_samples_seen"]
    p = _outputs64(model, x)
    assert history.history["max_abs_error"] == pytest.approx([np.mean(max_abs_error(y, p))] * 2, rel=1e-5)
    assert history.history["val_max_abs_error"][1] == pytest.approx(np.mean(max_abs_error(y[:7], p[:7])), rel=1e-5)
    assert history.history["samples_seen"] == [10, 10]          # reset at each epoch
    assert history.history["val_samples_seen"] == [7, 7]
    result = model.evaluate(x, y, return_dict=True, verbose=0)
    assert result["samples_seen"] == 10
    assert result["max_abs_error"] == pytest.approx(np.mean(max_abs_error(y, p)), rel=1e-5)


# -- sample and class weights ---------------------------------------------------------------------------------

def _mse64(y, p):
    return np.mean((p - y) ** 2, axis=-1)


def test_sample_weights_weight_the_loss_and_its_gradient():
    x, y = _data(rows=7)
    w = np.array([0.5, 1.0, 2.0, 0.0, 3.0, 1.5, 0.25], dtype=np.float32)
    _check_gradient(_model("mse"), x, y, _mse64, sample_weight=w)
    _check_gradient(_model(LogCosh()), x, y, _log_cosh64, sample_weight=w)
    labels = np.array([0, 2, 1, 1, 0, 2, 1])

    def scce64(lab, p):
        e = np.exp(p - p.max(axis=1, keepdims=True))
        return -np.log((e / e.sum(axis=1, keepdims=True))[np.arange(len(lab)), lab])
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    _check_gradient(model, x, labels, scce64, sample_weight=w)


def test_history_loss_is_the_weighted_sum_over_the_epoch_divided_by_its_size():
    x, y = _data(rows=10)
    w = np.linspace(0.1, 2.0, 10).astype(np.float32)
    model = _model("mse", lr=0.0, weighted_metrics=["mse"], metrics=["mse"])
    history = model.fit(x, y, batch_size=4, epochs=1, sample_weight=w, verbose=0)
    per_sample = _mse64(y, _outputs64(model, x))
    assert history.history["loss"][0] == pytest.approx(np.sum(w * per_sample) / 10, rel=1e-5)
    assert history.history["mse"][0] == pytest.approx(np.mean(per_sample), rel=1e-5)       # unweighted
    assert history.history["weighted_mse"][0] == pytest.approx(np.sum(w * per_sample) / np.sum(w), rel=1e-5)
    result = model.evaluate(x, y, sample_weight=w, return_dict=True, verbose=0)
    assert result["loss"] == pytest.approx(np.sum(w * per_sample) / 10, rel=1e-5)
    assert result["weighted_mse"] == pytest.approx(np.sum(w * per_sample) / np.sum(w), rel=1e-5)


def test_one_weighted_sgd_step_follows_the_weighted_gradient():
    x, y = _data(rows=6)
    w = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 3.0], dtype=np.float32)
    model = _model("mse")
    w0 = model._params.copy()
    _, grad = loss_and_gradients(model, x, y, sample_weight=w)
    model.fit(x, y, batch_size=6, epochs=1, sample_weight=w, verbose=0)
    np.testing.assert_allclose(model._params, w0 - np.float32(0.1) * grad, rtol=1e-5, atol=1e-7)


def test_class_weight_is_the_sample_weight_of_each_class():
    x, _ = _data(rows=9)
    labels = np.array([0, 1, 2, 2, 1, 0, 1, 2, 2])
    class_weight = {0: 0.5, 2: 3.0}                       # class 1 is missing: weight 1
    w = np.array([class_weight.get(c, 1.0) for c in labels], dtype=np.float32)
    runs = []
    for kw in ({"class_weight": class_weight}, {"sample_weight": w}):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", weighted_metrics=["accuracy"])
        runs.append((model.fit(x, labels, batch_size=4, epochs=2, shuffle=False, verbose=0, **kw).history,
                     model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    # One-hot targets give the same weights (argmax), and so do 0/1 targets of a single sigmoid unit.
    from fastnn.models.sample_weights import class_weights
    np.testing.assert_array_equal(class_weights(class_weight, np.eye(3, dtype=np.float32)[labels],
                                                np.zeros(0, np.int64), 3), w)
    np.testing.assert_array_equal(class_weights({1: 4.0}, np.array([[0.0], [1.0], [1.0]], np.float32),
                                                np.zeros(0, np.int64), 1), [1.0, 4.0, 4.0])


def test_validation_sample_weights_weight_val_loss():
    x, y = _data(rows=8)
    w = np.array([1, 2, 0, 1, 3, 1, 0.5, 1], dtype=np.float32)
    model = _model("mse", lr=0.0)
    history = model.fit(x, y, epochs=1, validation_data=(x, y, w), verbose=0)
    per_sample = _mse64(y, _outputs64(model, x))
    assert history.history["val_loss"][0] == pytest.approx(np.sum(w * per_sample) / 8, rel=1e-5)
    # validation_split carries the sample weights of the rows it holds out.
    history = model.fit(x, y, epochs=1, validation_split=0.25, sample_weight=w, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(np.sum(w[6:] * per_sample[6:]) / 2, rel=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"sample_weight": np.ones(5)}, r"shape \(6,\)"),
    ({"sample_weight": np.ones((6, 2))}, r"shape \(6,\)"),
    ({"sample_weight": -np.ones(6)}, "non-negative"),
    ({"sample_weight": np.array([1, 1, np.nan, 1, 1, 1])}, "NaN"),
    ({"sample_weight": np.ones(6), "class_weight": {0: 1.0}}, "at the same time"),
    ({"class_weight": {5: 1.0}}, r"class indices in \[0, 2\]"),
    ({"class_weight": {0: -1.0}}, "non-negative"),
    ({"class_weight": [1.0, 2.0]}, "must be a dict"),
])
def test_bad_weights_are_refused_before_training(kwargs, match):
    x, _ = _data()
    labels = np.array([0, 1, 2, 0, 1, 2])
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.fit(x, labels, verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        model.evaluate(x, labels, sample_weight=np.ones(3), verbose=0)


def test_the_cuda_device_refuses_what_its_kernels_lack():
    from fastnn.models import training
    # BatchNormalization, LeakyReLU, penalties, own metrics and sample weights run on CUDA
    # (tests/test_cuda_options.py); a Loss subclass is compiled for the CPU only.
    with pytest.raises(NotImplementedError, match="the loss LogCosh"):
        training._check_cuda_features(LogCosh())
    training._check_cuda_features(_model("mse", metrics=["mae"]).loss)
