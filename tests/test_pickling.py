"""Models pickle through the .keras format in memory, and clone_model copies an architecture.

What users rely on: a model sent to a joblib or Dask worker (pickle, cloudpickle,
copy.deepcopy) comes back with the same architecture, weights, compile settings
and optimizer state, so it predicts the same outputs and fit continues exactly
as the original would."""
import copy
import io
import pickle

import numpy as np
import pytest

import fastnn as keras


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread trains them in milliseconds, where two threads on a machine
    shared with other busy processes took seconds. Pickling does not depend on it."""
    import numba
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


def _data(n=96, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = (x[:, :classes] + 0.3 * rng.normal(size=(n, classes))).argmax(1)
    return x, y


def _model(compiled=True, trained=True, optimizer="adam", metrics=("accuracy",), **compile_kwargs):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.layers.Input(shape=(6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    if compiled:
        model.compile(optimizer=optimizer, loss=compile_kwargs.pop("loss", "sparse_categorical_crossentropy"),
                      metrics=list(metrics), **compile_kwargs)
    if trained:
        x, y = _data()
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model


def _same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(u, v) for u, v in zip(wa, wb))


class OwnSquaredError(keras.losses.Loss):
    """An own loss, importable by reference from this module (pickle stores the reference)."""

    def value(y_true, y_pred, constants):
        total = 0.0
        for j in range(y_pred.shape[0]):
            total += (y_pred[j] - y_true[j]) ** 2
        return total / y_pred.shape[0]

    def gradient(y_true, y_pred, constants, out):
        for j in range(y_pred.shape[0]):
            out[j] = 2.0 * (y_pred[j] - y_true[j]) / y_pred.shape[0]


def own_metric(y_true, y_pred):
    return np.abs(y_true - y_pred).max(axis=-1)


@pytest.mark.parametrize("dumps", [pickle.dumps, lambda m: __import__("cloudpickle").dumps(m)],
                         ids=["pickle", "cloudpickle"])
def test_trained_model_round_trip_keeps_predictions_optimizer_state_and_training(dumps):
    if dumps is not pickle.dumps:
        pytest.importorskip("cloudpickle")
    x, y = _data()
    model = _model(optimizer=keras.optimizers.Adam(learning_rate=0.02))
    copy_ = pickle.loads(dumps(model))
    assert type(copy_) is type(model) and copy_.name == model.name
    assert [l.name for l in copy_.layers] == [l.name for l in model.layers]
    assert _same_weights(model, copy_)
    np.testing.assert_array_equal(copy_.predict(x, verbose=0), model.predict(x, verbose=0))
    assert copy_.compiled and copy_.get_compile_config() == model.get_compile_config()
    assert copy_.optimizer.iterations == model.optimizer.iterations == 12
    assert copy_.optimizer.learning_rate == pytest.approx(0.02)
    assert copy_.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    # Continuing fit: Adam's moments and step count came along, so one more
    # epoch on the same batches ends on the same weights bit for bit.
    for m in (model, copy_):
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert _same_weights(model, copy_)
    assert copy_.optimizer.iterations == 18


def test_optimizer_state_is_what_makes_continued_training_match():
    """Guards the test above: a fresh optimizer (same weights, no moments) does not
    end on the same weights, so equality there comes from the pickled state."""
    x, y = _data()
    model = _model()
    fresh = keras.models.clone_model(model)
    fresh.set_weights(model.get_weights())
    for m in (model, fresh):
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert not _same_weights(model, fresh)


def test_untrained_and_uncompiled_models_round_trip():
    unbuilt = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)], name="tiny")
    back = pickle.loads(pickle.dumps(unbuilt))
    assert back.name == "tiny" and not back.built and not back.compiled and len(back.layers) == 2
    built = _model(compiled=False, trained=False)
    back = pickle.loads(pickle.dumps(built))
    assert back.built and not back.compiled and _same_weights(built, back)
    compiled = _model(trained=False)
    back = pickle.loads(pickle.dumps(compiled))
    assert back.compiled and back.optimizer.iterations == 0
    x, y = _data()
    for m in (compiled, back):
        m.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert _same_weights(compiled, back)


def test_deepcopy_is_an_independent_model():
    model = _model()
    twin = copy.deepcopy(model)
    assert _same_weights(model, twin)
    twin.layers[0].set_weights([np.zeros((6, 8)), np.zeros(8)])
    assert not np.array_equal(model.layers[0].get_weights()[0], 0)


def test_own_loss_metric_and_weighted_metrics_survive():
    """The .keras record can only name an own function (and load_model never
    imports one); a pickle carries the objects by reference instead."""
    x, y = _data()
    onehot = np.eye(3)[y]
    model = _model(trained=False, loss=OwnSquaredError(), metrics=[own_metric], weighted_metrics=["mae"])
    model.fit(x, onehot, epochs=1, batch_size=16, verbose=0)
    back = pickle.loads(pickle.dumps(model))
    assert back.loss is not None and back.optimizer.iterations == model.optimizer.iterations
    w = np.linspace(0.5, 1.5, len(x))
    assert back.evaluate(x, onehot, sample_weight=w, return_dict=True, verbose=0) == \
        model.evaluate(x, onehot, sample_weight=w, return_dict=True, verbose=0)
    for m in (model, back):
        m.fit(x, onehot, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert _same_weights(model, back)


def test_save_and_load_take_file_objects():
    model = _model()
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    back = keras.models.load_model(buffer)
    assert _same_weights(model, back) and back.optimizer.iterations == model.optimizer.iterations
    with pytest.raises(ValueError, match="empty"):
        keras.models.load_model(io.BytesIO())
    with pytest.raises(ValueError, match="not a .keras file"):
        keras.models.load_model(io.BytesIO(b"not a model"))


def test_clone_model_has_the_architecture_new_weights_and_compile_settings():
    model = _model(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9))
    clone = keras.models.clone_model(model)
    assert clone is not model and clone.get_config() == model.get_config()
    assert not any(np.array_equal(a, b) for a, b in zip(clone.get_weights(), model.get_weights()) if a.ndim == 2)
    assert clone.compiled and clone.get_compile_config() == model.get_compile_config()
    assert clone.optimizer is not model.optimizer and clone.optimizer.iterations == 0
    # the initializers draw from fastnn's generator: a seed makes clones reproducible
    keras.utils.set_random_seed(7)
    a = keras.models.clone_model(model)
    keras.utils.set_random_seed(7)
    b = keras.models.clone_model(model)
    assert _same_weights(a, b)
    x, y = _data()
    clone.fit(x, y, epochs=1, verbose=0)    # trains on its own
    uncompiled = keras.models.clone_model(_model(compiled=False, trained=False))
    assert not uncompiled.compiled and uncompiled.built


def test_clone_model_with_own_loss_and_clone_function():
    model = _model(trained=False, loss=OwnSquaredError(), metrics=[own_metric], weighted_metrics=["mae"])
    clone = keras.models.clone_model(model)
    assert clone.compiled and clone.get_compile_config() == model.get_compile_config()
    x, y = _data()
    clone.fit(x, np.eye(3)[y], epochs=1, verbose=0)

    def wider(layer):
        config = layer.get_config()
        if layer.name == "dense":
            config["units"] = 12
        return type(layer).from_config(config)
    wide = keras.models.clone_model(model, clone_function=wider)
    assert wide.layers[0].get_weights()[0].shape == (6, 12)
    assert wide.input_shape == model.input_shape


def test_clone_model_refuses_what_it_cannot_do():
    model = _model(trained=False)
    with pytest.raises(NotImplementedError, match="input_tensors"):
        keras.models.clone_model(model, input_tensors=[keras.Input(shape=(6,))])
    with pytest.raises(NotImplementedError, match="call_function"):
        keras.models.clone_model(model, call_function=lambda layer, x: layer(x))
    with pytest.raises(ValueError, match="clone_function"):
        keras.models.clone_model(model, clone_function=3)
    with pytest.raises(ValueError, match="unexpected"):
        keras.models.clone_model(model, cache={})
    with pytest.raises(TypeError, match="expects a fastnn model"):
        keras.models.clone_model(object())


def test_functional_models_pickle_and_clone_but_subclassed_ones_refuse():
    inputs = keras.Input(shape=(6,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    x = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(x, verbose=0), model.predict(x, verbose=0))
    clone = keras.models.clone_model(model)
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]

    class Own(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    own = Own()
    own.predict(x, verbose=0)
    with pytest.raises(pickle.PicklingError, match="Own models cannot be pickled yet"):
        pickle.dumps(own)
