"""The Keras-shaped surface: namespace, Sequential, naming, weights, initializers,
summary, compile/fit/evaluate/predict contracts, loss and metric values, progress output."""
import io
import math
import re
import sys

import numpy as np
import pytest

import fastnn as keras

from _util import compiled


def seeds_mlp(form="flatten"):
    """The seeds' MLP: 28x28 inputs, Flatten, Dense 300 relu, 100 relu, 10 softmax."""
    if form == "flatten":
        first = [keras.layers.Flatten(input_shape=[28, 28])]
    else:
        first = [keras.layers.Input(shape=[28, 28]), keras.layers.Flatten()]
    return first + [keras.layers.Dense(300, activation="relu"), keras.layers.Dense(100, activation="relu"),
                    keras.layers.Dense(10, activation="softmax")]


def identity_model(width, activation=None, loss="mse", metrics=None):
    """Dense(width) with kernel I and bias 0: its output is act(x), known exactly."""
    model = compiled([keras.layers.Dense(width, activation=activation, input_shape=(width,))], loss=loss,
                     metrics=metrics)
    model.layers[0].set_weights([np.eye(width, dtype=np.float32), np.zeros(width, dtype=np.float32)])
    return model


# -- namespace ------------------------------------------------------------------

def test_namespace_has_what_keras_users_write():
    assert keras.Sequential is keras.models.Sequential
    for name in ("Input", "InputLayer", "Flatten", "Dense", "Activation", "Normalization", "Rescaling"):
        assert hasattr(keras.layers, name), f"fastnn.layers.{name}"
    assert keras.Input is keras.layers.Input
    for name in ("SGD", "RMSprop", "Adam", "Adagrad"):
        assert hasattr(keras.optimizers, name), f"fastnn.optimizers.{name}"
    for name in ("SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
                 "MeanSquaredError", "MeanAbsoluteError", "sparse_categorical_crossentropy",
                 "categorical_crossentropy", "binary_crossentropy", "mse", "mean_squared_error", "mae"):
        assert hasattr(keras.losses, name), f"fastnn.losses.{name}"
    for name in ("BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy", "MeanSquaredError",
                 "MeanAbsoluteError", "RootMeanSquaredError"):
        assert hasattr(keras.metrics, name), f"fastnn.metrics.{name}"
    for name in ("linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "gelu", "swish", "silu",
                 "leaky_relu", "softplus", "exponential"):
        assert callable(getattr(keras.activations, name)), f"fastnn.activations.{name}"
    for name in ("GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal", "Zeros",
                 "Ones", "RandomNormal", "RandomUniform"):
        assert hasattr(keras.initializers, name), f"fastnn.initializers.{name}"
    assert issubclass(keras.callbacks.History, keras.callbacks.Callback)
    assert callable(keras.utils.set_random_seed)
    assert callable(keras.datasets.fashion_mnist.load_data) and callable(keras.datasets.mnist.load_data)


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adagrad"])
def test_optimizer_names(name):
    model = compiled([keras.layers.Dense(1, input_shape=(2,))], optimizer=name)
    assert type(model.optimizer).__name__.lower() == name


@pytest.mark.parametrize("identifier", ["linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "gelu",
                                        "swish", "silu", "leaky_relu", "softplus", "exponential"])
def test_activation_by_name_and_by_function(identifier):
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    by_name = identity_model(4, activation=identifier).predict(x, verbose=0)
    by_function = identity_model(4, activation=getattr(keras.activations, identifier)).predict(x, verbose=0)
    np.testing.assert_array_equal(by_name, by_function)


def test_activation_values_follow_keras_formulas():
    """The compiled activations against Keras 3's definitions (float64 references;
    float32 results agree to a few ulps, 1e-6 relative)."""
    z = np.array([[-3.0, -1.2, -0.3, 0.2, 0.9, 2.5]], dtype=np.float32)
    zz = z.astype(np.float64)
    sig = 1 / (1 + np.exp(-zz))
    erf = np.vectorize(math.erf)
    expected = {
        "linear": zz, "relu": np.maximum(zz, 0), "sigmoid": sig, "tanh": np.tanh(zz),
        "softmax": np.exp(zz) / np.exp(zz).sum(),
        "elu": np.where(zz > 0, zz, np.expm1(zz)),
        "selu": 1.0507009873554805 * np.where(zz > 0, zz, 1.6732632423543772 * np.expm1(zz)),
        "gelu": 0.5 * zz * (1 + erf(zz / np.sqrt(2))),   # Keras 3 default: exact, approximate=False
        "swish": zz * sig, "silu": zz * sig,
        "leaky_relu": np.where(zz > 0, zz, 0.2 * zz),    # keras.activations.leaky_relu: slope 0.2
        "softplus": np.log1p(np.exp(zz)), "exponential": np.exp(zz),
    }
    for name, want in expected.items():
        got = identity_model(6, activation=name).predict(z, verbose=0)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)


# -- Sequential, names, layers ----------------------------------------------------------

def test_list_and_add_forms_build_the_same_model():
    listed = keras.Sequential(seeds_mlp())
    added = keras.models.Sequential()
    for layer in seeds_mlp("input"):
        added.add(layer)
    # names are numbered across the session, as in Keras 3: the second model's continue the first's
    assert [layer.name for layer in listed.layers] == ["flatten", "dense", "dense_1", "dense_2"]
    assert [layer.name for layer in added.layers] == ["flatten_1", "dense_3", "dense_4", "dense_5"]
    assert [listed.name, added.name] == ["sequential", "sequential_1"]
    for model in (listed, added):
        assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense", "Dense", "Dense"]
        assert model.input_shape == (None, 28, 28)
        assert model.output_shape == (None, 10)
        assert model.count_params() == 266_610


def test_auto_names_are_numbered_across_the_session_as_keras_3():
    """Keras 3.15's names (checked with it): layers, inputs and models are numbered across the
    session, whichever model they join; clear_session starts again; a layer called on arrays
    takes no name."""
    L = keras.layers
    a = keras.Sequential([keras.Input((3,)), L.Dense(2), L.Dense(1)])
    b = keras.Sequential([L.Dense(2, input_shape=(3,)), L.Dense(1)])
    c = keras.Sequential()
    c.add(L.Input((3,)))
    c.add(L.Dense(4))
    assert [a.name, b.name, c.name] == ["sequential", "sequential_1", "sequential_2"]
    assert [[layer.name for layer in m.layers] for m in (a, b, c)] == [["dense", "dense_1"], ["dense_2", "dense_3"],
                                                                       ["dense_4"]]
    assert [r["config"]["name"] for r in a.get_config()["layers"]] == ["input_layer", "dense", "dense_1"]
    assert [r["config"]["name"] for r in b.get_config()["layers"]] == ["input_layer_1", "dense_2", "dense_3"]
    inp = keras.Input((3,))
    functional = [keras.Model(inp, L.Dense(1)(inp)), keras.Model(inp, L.Dense(1)(inp))]
    assert [m.name for m in functional] == ["functional", "functional_1"]
    assert [layer.name for layer in functional[0].layers] == ["input_layer_3", "dense_5"]

    class MyModel(keras.Model):
        def call(self, x):
            return x

    class MyLayer(L.Layer):
        pass

    assert [MyModel().name, MyModel().name, MyLayer().name, MyLayer().name] == ["my_model", "my_model_1",
                                                                                "my_layer", "my_layer_1"]
    L.Dense(2)(np.ones((1, 3), np.float32))        # dense_7: its eager call makes no named model or input
    assert L.Dense(1).name == "dense_8" and keras.Input((1,))._keras_history[0].name == "input_layer_4"
    keras.backend.clear_session()
    fresh = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    assert (fresh.name, fresh.layers[0].name) == ("sequential", "dense")


def test_explicit_and_unicode_names():
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(2,), name="couche_élan"),
                              keras.layers.Dense(2, name="層2")], name="模型_ü")
    assert model.name == "模型_ü"
    assert model.get_layer("couche_élan") is model.layers[0]
    assert model.get_layer("層2") is model.layers[1]
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert text.splitlines()[0] == 'Model: "模型_ü"'
    assert " couche_élan (Dense)" in text and " 層2 (Dense)" in text


def test_model_without_an_input_shape_is_built_by_its_first_fit():
    model = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    assert model.get_weights() == []
    model.compile(loss="mse")
    model.fit(np.ones((6, 3)), np.zeros((6, 2)), verbose=0)
    assert model.input_shape == (None, 3)
    assert [w.shape for w in model.get_weights()] == [(3, 4), (4,), (4, 2), (2,)]


def test_get_layer():
    model = keras.Sequential(seeds_mlp("input"))
    hidden1 = model.layers[1]
    assert hidden1.name == "dense"
    assert model.get_layer("dense") is hidden1
    assert model.get_layer(index=3) is model.layers[3]
    with pytest.raises(ValueError, match="nope"):
        model.get_layer("nope")


def test_duplicate_layer_name_is_refused():
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(2,), name="a")])
    with pytest.raises(ValueError, match="'a'"):
        model.add(keras.layers.Dense(2, name="a"))


# -- weights ------------------------------------------------------------------------

def test_dense_weights_glorot_uniform_and_zero_bias():
    model = keras.Sequential(seeds_mlp())
    for layer, (fan_in, fan_out) in zip(model.layers[1:], [(784, 300), (300, 100), (100, 10)]):
        kernel, bias = layer.get_weights()
        assert kernel.shape == (fan_in, fan_out) and bias.shape == (fan_out,)
        assert kernel.dtype == np.float32 and bias.dtype == np.float32
        limit = math.sqrt(6 / (fan_in + fan_out))
        assert np.abs(kernel).max() <= limit
        # With n >= 1000 uniform draws the largest |w| is within 1% of the limit
        # unless all n miss [0.99 limit, limit]: probability 0.99^n < 5e-5.
        assert np.abs(kernel).max() >= 0.99 * limit
        assert np.all(bias == 0)


def test_get_weights_returns_copies():
    model = compiled([keras.layers.Dense(3, input_shape=(2,)), keras.layers.Dense(1)])
    layer = model.layers[0]
    kernel, bias = layer.get_weights()
    kernel[...] = 7.0
    bias[...] = 7.0
    for w in model.get_weights():
        w[...] = 7.0
    assert not np.any(layer.get_weights()[0] == 7.0)
    assert not np.any(model.get_weights()[1] == 7.0)


def test_set_weights_on_layer_and_model_changes_predictions():
    model = compiled([keras.layers.Dense(3, input_shape=(2,)), keras.layers.Dense(1)])
    x = np.array([[1.0, 2.0], [-1.0, 0.5]], dtype=np.float32)
    k1 = np.array([[1, 0, -1], [2, 1, 0]], dtype=np.float32)
    b1 = np.array([0.5, -0.5, 1.0], dtype=np.float32)
    model.layers[0].set_weights([k1, b1])
    k2 = np.array([[1.0], [-2.0], [0.25]])         # float64 is accepted and stored as float32
    b2 = np.array([3.0])
    model.layers[1].set_weights([k2, b2])
    np.testing.assert_allclose(model.predict(x, verbose=0), (x @ k1 + b1) @ k2 + b2, rtol=1e-6)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(2, 3), (3,), (3, 1), (1,)]
    assert all(w.dtype == np.float32 for w in weights)
    model.set_weights([w * 2 for w in weights])
    np.testing.assert_allclose(model.predict(x, verbose=0), (x @ (2 * k1) + 2 * b1) @ (2 * k2) + 2 * b2,
                               rtol=1e-6)


def test_bad_set_weights_raises_and_changes_nothing():
    model = compiled([keras.layers.Dense(3, input_shape=(2,)), keras.layers.Dense(1)])
    before = model.get_weights()
    good = [np.ones_like(w) for w in before]
    with pytest.raises(ValueError, match="shape"):
        model.set_weights(good[:3] + [np.ones((2,))])            # last array has the wrong shape
    with pytest.raises(ValueError):
        model.set_weights(good[:3])                               # wrong count
    with pytest.raises(ValueError, match="shape"):
        model.layers[0].set_weights([np.ones((2, 3)), np.ones((4,))])
    with pytest.raises(ValueError):
        model.layers[0].set_weights([np.ones((2, 3))])
    with pytest.raises(ValueError):
        model.layers[0].set_weights([np.full((2, 3), np.nan), np.ones(3)])
    for b, a in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- initializers and seeding --------------------------------------------------------

FAN_IN, FAN_OUT = 400, 300
N_DRAWS = FAN_IN * FAN_OUT
AVG = (FAN_IN + FAN_OUT) / 2
# (name, kind, scale of the distribution) with Keras 3's formulas:
# uniform: U(-limit, limit); truncated: normal with std sigma, cut at 2 sigma / 0.8796...
# so that the remaining std is sigma; normal: untruncated.
INITIALIZERS = [
    ("glorot_uniform", "uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("he_uniform", "uniform", math.sqrt(6 / FAN_IN)),
    ("lecun_uniform", "uniform", math.sqrt(3 / FAN_IN)),
    ("random_uniform", "uniform", 0.05),
    ("glorot_normal", "truncated", math.sqrt(1 / AVG)),
    ("he_normal", "truncated", math.sqrt(2 / FAN_IN)),
    ("lecun_normal", "truncated", math.sqrt(1 / FAN_IN)),
    ("random_normal", "normal", 0.05),
]


@pytest.mark.parametrize("name,kind,scale", INITIALIZERS, ids=[i[0] for i in INITIALIZERS])
def test_initializer_distribution(name, kind, scale):
    keras.utils.set_random_seed(11)
    w = keras.initializers.get(name)((FAN_IN, FAN_OUT)).astype(np.float64)
    assert w.shape == (FAN_IN, FAN_OUT)
    std = scale / math.sqrt(3) if kind == "uniform" else scale
    # Tolerances are 6 standard errors (a false alarm has probability < 1e-8):
    # the mean's is std / sqrt(n); the sample std's is std * sqrt((kurtosis - 1) / (4 n)),
    # with kurtosis 1.8 (uniform) or at most 3 (normal, truncated normal).
    kurtosis = 1.8 if kind == "uniform" else 3.0
    assert abs(w.mean()) <= 6 * std / math.sqrt(N_DRAWS)
    assert abs(w.std() - std) <= 6 * std * math.sqrt((kurtosis - 1) / (4 * N_DRAWS))
    if kind == "uniform":
        assert np.abs(w).max() <= scale
    elif kind == "truncated":
        assert np.abs(w).max() <= 2 * scale / 0.87962566103423978
    else:
        # 120,000 untruncated normal draws reach beyond 3 sigma (expected ~320 of them).
        assert np.abs(w).max() > 3 * scale


@pytest.mark.parametrize("name,value", [("zeros", 0.0), ("ones", 1.0)])
def test_constant_initializers(name, value):
    w = keras.initializers.get(name)((3, 4))
    assert w.dtype == np.float32 and np.all(w == value)


def test_set_random_seed_makes_initial_weights_repeatable():
    def weights(seed):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.layers.Dense(8, input_shape=(5,), kernel_initializer="he_normal"),
                                  keras.layers.Dense(3, bias_initializer="random_uniform")])
        return model.get_weights()
    a, b, c = weights(5), weights(5), weights(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


# -- summary ------------------------------------------------------------------------

SEEDS_SUMMARY = """\
Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape              Param #
=================================================================
 flatten (Flatten)           (None, 784)               0
 dense (Dense)               (None, 300)               235500
 dense_1 (Dense)             (None, 100)               30100
 dense_2 (Dense)             (None, 10)                1010
=================================================================
Total params: 266,610
Trainable params: 266,610
Non-trainable params: 0
_________________________________________________________________
"""


@pytest.mark.parametrize("form", ["flatten", "input"])
def test_summary_text_matches_the_guide(form, capsys):
    model = keras.Sequential(seeds_mlp(form))
    model.summary()
    assert capsys.readouterr().out == SEEDS_SUMMARY


def test_summary_counts_non_trainable_params():
    norm = keras.layers.Normalization(input_shape=(4,))
    model = keras.Sequential([norm, keras.layers.Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    # Normalization holds mean (4), variance (4) and count (1), none trainable.
    # Keras 2 wraps a name too long for its column (26 characters at line_length 65)
    assert " normalization (Normalizati  (None, 4)                 9\n on)\n" in text
    assert "Total params: 19" in text
    assert "Trainable params: 10" in text
    assert "Non-trainable params: 9" in text


# -- compile / fit / evaluate / predict ------------------------------------------------------

def _classification_data(n=40, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def test_compile_defaults_to_rmsprop():
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    model.compile(loss="mse")
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert model.optimizer.learning_rate == pytest.approx(0.001)


def test_history_keys_and_plain_floats():
    x, y = _classification_data()
    model = compiled([keras.layers.Dense(3, activation="softmax", input_shape=(5,))],
                     loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x[:30], y[:30], epochs=3, batch_size=8, verbose=0, validation_data=(x[30:], y[30:]))
    assert isinstance(history, keras.callbacks.History)
    assert model.history is history
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history.epoch == [0, 1, 2]
    for values in history.history.values():
        assert len(values) == 3
        assert all(type(v) is float for v in values)


@pytest.mark.parametrize("metric,key", [
    ("binary_accuracy", "binary_accuracy"),
    (keras.metrics.BinaryAccuracy(), "binary_accuracy"),
    ("RootMeanSquaredError", "RootMeanSquaredError"),
    (keras.metrics.RootMeanSquaredError(), "root_mean_squared_error"),
    ("mse", "mse"), ("mae", "mae"),
    ("accuracy", "accuracy"), ("acc", "acc"),
])
def test_history_uses_keras_metric_names(metric, key):
    x = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model = compiled([keras.layers.Dense(1, activation="sigmoid", input_shape=(3,))],
                     loss="binary_crossentropy", metrics=[metric])
    history = model.fit(x, y, epochs=1, verbose=0, validation_split=0.25)
    assert list(history.history) == ["loss", key, "val_loss", "val_" + key]


def test_metrics_as_a_bare_string():
    x, y = _classification_data()
    model = compiled([keras.layers.Dense(3, activation="softmax", input_shape=(5,))],
                     loss="sparse_categorical_crossentropy", metrics="accuracy")
    assert list(model.fit(x, y, verbose=0).history) == ["loss", "accuracy"]


def test_evaluate_return_types():
    x, y = _classification_data()
    plain = compiled([keras.layers.Dense(3, activation="softmax", input_shape=(5,))],
                     loss="sparse_categorical_crossentropy")
    loss = plain.evaluate(x, y, verbose=0)
    assert type(loss) is float
    with_metrics = compiled([keras.layers.Dense(3, activation="softmax", input_shape=(5,))],
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    values = with_metrics.evaluate(x, y, verbose=0)
    assert isinstance(values, list) and len(values) == 2 and all(type(v) is float for v in values)
    logs = with_metrics.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy"]
    assert logs["loss"] == values[0] and logs["accuracy"] == values[1]
    assert plain.evaluate(x, y, verbose=0, return_dict=True) == {"loss": loss}


def test_predict_returns_float32_of_the_output_shape():
    model = compiled(seeds_mlp())
    x = np.random.default_rng(2).random((70, 28, 28))
    proba = model.predict(x, batch_size=32, verbose=0)
    assert isinstance(proba, np.ndarray) and proba.dtype == np.float32 and proba.shape == (70, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    one = compiled([keras.layers.Dense(1, input_shape=(4,))]).predict(np.ones((3, 4)), verbose=0)
    assert one.dtype == np.float32 and one.shape == (3, 1)
    # Rows are independent, so the batch size changes at most the GEMM's rounding
    # (float32, a few ulps of the 784-term dot products).
    np.testing.assert_allclose(model.predict(x, batch_size=7, verbose=0), proba, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch_size", [32, 512])
def test_predict_matches_the_written_out_forward_pass(batch_size):
    """Batches of 256 rows or more split each product by rows across threads
    instead of by columns; both must give relu(x W1 + b1) ... softmax, the
    first Dense layer reading the caller's rows in place, the last batch short."""
    rng = np.random.default_rng(4)
    model = compiled([keras.layers.Input(shape=(784,)), keras.layers.Dense(300, activation="relu"),
                      keras.layers.Dense(100, activation="tanh"), keras.layers.Dense(10, activation="softmax")])
    x = rng.random((600, 784), dtype=np.float32)
    w1, b1, w2, b2, w3, b3 = [w.astype(np.float64) for w in model.get_weights()]
    logits = np.tanh(np.maximum(x @ w1 + b1, 0.0) @ w2 + b2) @ w3 + b3
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, batch_size=batch_size, verbose=0), expected, rtol=1e-4, atol=1e-6)


def test_uint8_and_float64_inputs_match_float32():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (48, 6, 6), dtype=np.uint8)
    y = rng.integers(0, 4, 48)

    def run(x):
        model = compiled([keras.layers.Flatten(input_shape=(6, 6)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(4, activation="softmax")],
                         loss="sparse_categorical_crossentropy", optimizer="adam", seed=4)
        keras.utils.set_random_seed(5)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return model.get_weights(), model.predict(x, verbose=0), model.evaluate(x, y, verbose=0)

    reference = run(pixels.astype(np.float32))
    for x in (pixels, pixels.astype(np.float64)):
        weights, proba, loss = run(x)
        for a, b in zip(weights, reference[0]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(proba, reference[1])
        assert loss == reference[2]
    # float64 values that are not exact in float32 are rounded once, like astype(float32).
    scaled = pixels / 255.0
    model = compiled([keras.layers.Flatten(input_shape=(6, 6)), keras.layers.Dense(4)])
    np.testing.assert_array_equal(model.predict(scaled, verbose=0),
                                  model.predict(scaled.astype(np.float32), verbose=0))


# -- "accuracy" resolution ------------------------------------------------------------------

def test_accuracy_is_binary_for_one_output():
    p = np.array([[0.2], [0.7], [0.51], [0.4], [0.9]], dtype=np.float32)
    y = np.array([0, 1, 0, 1, 1], dtype=np.float32)
    model = identity_model(1, loss="binary_crossentropy", metrics=["accuracy"])
    # binary accuracy thresholds at 0.5: [1, 1, 0, 0, 1]; argmax over one column would give 2/5
    assert model.evaluate(p, y, verbose=0)[1] == pytest.approx(3 / 5)


def test_accuracy_is_sparse_for_integer_labels():
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]], dtype=np.float32)
    y = np.array([1, 1, 2, 0])
    model = identity_model(3, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert model.evaluate(p, y, verbose=0)[1] == pytest.approx(2 / 4)


def test_accuracy_is_categorical_for_one_hot_targets():
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]], dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[[1, 1, 2, 0]]
    for loss in ("categorical_crossentropy", "binary_crossentropy"):
        # Keras resolves "accuracy" from shapes only: several outputs and targets of
        # the same shape mean categorical accuracy, whatever the loss.
        model = identity_model(3, loss=loss, metrics=["accuracy"])
        assert model.evaluate(p, y, verbose=0)[1] == pytest.approx(2 / 4), loss


# -- loss and metric values against written-out formulas ---------------------------------

EPS = 1e-7
# Keras clips in float32: the bounds are float32(1e-7) and float32(1 - 1e-7) = 1 - 2**-23.
LOW, HIGH = float(np.float32(EPS)), 1 - 2.0 ** -23


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _clip(p):
    return np.clip(p, LOW, HIGH)


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


# Keras 3 per-sample losses, in float64: cross-entropy on probabilities renormalises
# (categorical) and clips to [1e-7, 1 - 1e-7]; the loss is their mean over samples.
def mse(y, p):
    y, p = _f64(y, p)
    return np.mean((p - y) ** 2, axis=-1)
def mae(y, p):
    y, p = _f64(y, p)
    return np.mean(np.abs(p - y), axis=-1)
def cce(y, p):
    y, p = _f64(y, p)
    return -np.sum(y * np.log(_clip(p / p.sum(axis=-1, keepdims=True))), axis=-1)
def cce_logits(y, z):
    y, z = _f64(y, z)
    return -np.sum(y * _log_softmax(z), axis=-1)
def bce(y, p):
    y, p = _f64(y, p)
    return -np.mean(y * np.log(_clip(p)) + (1 - y) * np.log(1 - _clip(p)), axis=-1)
def bce_logits(y, z):
    y, z = _f64(y, z)
    return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))), axis=-1)


RNG = np.random.default_rng(8)
N = 45                     # more than one evaluate batch of 32, the last one partial
LOGITS = RNG.normal(0, 2, (N, 4)).astype(np.float32)
LOGITS[0] = [30.0, 0.0, -30.0, 1.0]          # a confident sample: the fused path stays exact
LABELS = RNG.integers(0, 4, N)
LABELS[:3] = [2, 1, 0]
ONE_HOT = np.eye(4, dtype=np.float32)[LABELS]
PROBS = RNG.uniform(0, 1, (N, 4)).astype(np.float32)
# Values the clipping acts on. Where a label falls on a clipped entry the row sums to 1:
# Keras's TensorFlow backend clips before renormalising for sparse targets and after
# for one-hot ones, which agree only then.
PROBS[1] = [0.0, 1.0, 0.5, 1e-9]
PROBS[2] = [0.0, 0.25, 0.25, 0.5]
MULTI = (RNG.random((N, 4)) < 0.5).astype(np.float32)
VALUES = RNG.normal(0, 1, (N, 4)).astype(np.float32)
SIGMOID = 1 / (1 + np.exp(-LOGITS.astype(np.float64)))
SOFTMAX = np.exp(_log_softmax(LOGITS.astype(np.float64)))

LS = keras.losses
# (id, loss, activation of the identity model, its input, targets, expected mean loss)
LOSS_VALUES = [
    ("mse", "mse", None, VALUES, PROBS, mse(PROBS, VALUES)),
    ("mean_squared_error_object", LS.MeanSquaredError(), None, VALUES, PROBS, mse(PROBS, VALUES)),
    ("mae", "mae", None, VALUES, PROBS, mae(PROBS, VALUES)),
    ("cce_probabilities", "categorical_crossentropy", None, PROBS, ONE_HOT, cce(ONE_HOT, PROBS)),
    ("cce_fused_softmax", "categorical_crossentropy", "softmax", LOGITS, ONE_HOT, cce_logits(ONE_HOT, LOGITS)),
    ("cce_from_logits", LS.CategoricalCrossentropy(from_logits=True), None, LOGITS, ONE_HOT,
     cce_logits(ONE_HOT, LOGITS)),
    ("scce_probabilities", "sparse_categorical_crossentropy", None, PROBS, LABELS, cce(ONE_HOT, PROBS)),
    ("scce_fused_softmax", "sparse_categorical_crossentropy", "softmax", LOGITS, LABELS,
     cce_logits(ONE_HOT, LOGITS)),
    ("scce_from_logits", LS.SparseCategoricalCrossentropy(from_logits=True), None, LOGITS, LABELS,
     cce_logits(ONE_HOT, LOGITS)),
    ("bce_probabilities", "binary_crossentropy", None, PROBS, MULTI, bce(MULTI, PROBS)),
    ("bce_fused_sigmoid", "binary_crossentropy", "sigmoid", LOGITS, MULTI, bce_logits(MULTI, LOGITS)),
    ("bce_from_logits", LS.BinaryCrossentropy(from_logits=True), None, LOGITS, MULTI,
     bce_logits(MULTI, LOGITS)),
]


@pytest.mark.parametrize("case", LOSS_VALUES, ids=[c[0] for c in LOSS_VALUES])
def test_evaluate_matches_the_loss_formula(case):
    """model.evaluate (compiled float32 loss) against the float64 formula; a
    float32 loss of a few dozen operations is within 1e-5 relative."""
    _, loss, activation, x, y, per_sample = case
    model = identity_model(4, activation=activation, loss=loss)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(per_sample.mean(), rel=1e-5)


@pytest.mark.parametrize("case", LOSS_VALUES, ids=[c[0] for c in LOSS_VALUES])
def test_loss_objects_on_numpy_arrays(case):
    """fastnn.losses objects called on NumPy arrays (y_true, y_pred), with y_pred the
    model output: softmax / sigmoid of the logits where the model applies one."""
    _, loss, activation, x, y, per_sample = case
    loss_object = keras.losses.get(loss)
    y_pred = {None: x, "softmax": SOFTMAX, "sigmoid": SIGMOID}[activation]
    if activation is not None:
        # Keras on probabilities, not the fused logits: identical where nothing is clipped.
        unclipped = (y_pred > LOW).all(axis=1) & (y_pred < HIGH).all(axis=1)
        y, y_pred, per_sample = y[unclipped], y_pred[unclipped], per_sample[unclipped]
    assert loss_object(y, y_pred) == pytest.approx(per_sample.mean(), rel=1e-6)


def test_loss_functions_by_name_give_per_sample_values():
    np.testing.assert_allclose(keras.losses.mse(PROBS, VALUES), mse(PROBS, VALUES), rtol=1e-6)
    np.testing.assert_allclose(keras.losses.binary_crossentropy(MULTI, PROBS), bce(MULTI, PROBS), rtol=1e-6)
    np.testing.assert_allclose(keras.losses.sparse_categorical_crossentropy(LABELS, PROBS), cce(ONE_HOT, PROBS),
                               rtol=1e-6)


def _argmax_hits(y, p):
    return (np.argmax(p, axis=-1) == np.argmax(y, axis=-1)).astype(np.float64)


# (id, loss, metric, identity-model input, targets, expected metric value)
METRIC_VALUES = [
    ("sparse_categorical_accuracy", "sparse_categorical_crossentropy", "sparse_categorical_accuracy", PROBS,
     LABELS, (np.argmax(PROBS, axis=1) == LABELS).mean()),
    ("categorical_accuracy", "categorical_crossentropy", "categorical_accuracy", PROBS, ONE_HOT,
     _argmax_hits(ONE_HOT, PROBS).mean()),
    ("binary_accuracy", "binary_crossentropy", "binary_accuracy", PROBS, MULTI,
     ((PROBS > 0.5) == MULTI).mean()),
    ("BinaryAccuracy", "binary_crossentropy", keras.metrics.BinaryAccuracy(), PROBS, MULTI,
     ((PROBS > 0.5) == MULTI).mean()),
    ("mse", "mae", "mse", VALUES, PROBS, mse(PROBS, VALUES).mean()),
    ("mae", "mse", "mae", VALUES, PROBS, mae(PROBS, VALUES).mean()),
    ("RootMeanSquaredError", "mse", "RootMeanSquaredError", VALUES, PROBS,
     np.sqrt(((VALUES - PROBS).astype(np.float64) ** 2).mean())),
]


@pytest.mark.parametrize("case", METRIC_VALUES, ids=[c[0] for c in METRIC_VALUES])
def test_evaluate_matches_the_metric_formula(case):
    _, loss, metric, x, y, expected = case
    model = identity_model(4, loss=loss, metrics=[metric])
    assert model.evaluate(x, y, verbose=0)[1] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("case", METRIC_VALUES, ids=[c[0] for c in METRIC_VALUES])
def test_metric_objects_on_numpy_arrays(case):
    _, _, metric, x, y, expected = case
    metric_object = keras.metrics.get(metric, output_dim=4, target_ndim=np.ndim(y))
    assert metric_object(y, x) == pytest.approx(expected, rel=1e-6)


# -- progress output ------------------------------------------------------------------

NUMBER = r"\d+\.\d{4}"
PER_STEP = r"\d+(?:us|ms|s)/step"


def _fit_for_output(verbose, **kwargs):
    x, y = _classification_data(n=40)
    model = compiled([keras.layers.Dense(3, activation="softmax", input_shape=(5,))],
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x[:30], y[:30], epochs=2, batch_size=8, verbose=verbose,
                     validation_data=(x[30:], y[30:]), **kwargs)


def _check_epoch_lines(out, history, bar, tail=""):
    """Two epochs: "Epoch k/2" then one line, ``bar`` + the four values + ``tail``."""
    lines = out.splitlines()
    assert len(lines) == 4, out
    for epoch in range(2):
        assert lines[2 * epoch] == f"Epoch {epoch + 1}/2"
        line = lines[2 * epoch + 1]
        values = " - ".join(["", f"loss: {NUMBER}", f"accuracy: {NUMBER}", f"val_loss: {NUMBER}",
                             f"val_accuracy: {NUMBER}"])
        assert re.fullmatch(bar + values + tail, line), line
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert f" - {key}: {history.history[key][epoch]:.4f}" in line


def test_verbose_1_off_a_terminal_prints_one_line_per_epoch(capsys):
    history = _fit_for_output(1)
    _check_epoch_lines(capsys.readouterr().out, history, rf"4/4 \[={{30}}\] - \d+s {PER_STEP}")


def test_verbose_auto_is_verbose_1(capsys):
    history = _fit_for_output("auto")
    _check_epoch_lines(capsys.readouterr().out, history, rf"4/4 \[={{30}}\] - \d+s {PER_STEP}")


def test_verbose_2_prints_one_line_per_epoch(capsys):
    """Keras 2 prints no bar at verbose=2; its releases put the per-step time before the
    values ("4/4 - 0s - 2ms/step - loss: ...") or after them ("... - 0s/epoch - 2ms/step")."""
    history = _fit_for_output(2)
    _check_epoch_lines(capsys.readouterr().out, history, rf"4/4 - \d+s(?: - {PER_STEP})?",
                       rf"(?: - \d+s/epoch - {PER_STEP})?")


def test_verbose_0_prints_nothing(capsys):
    _fit_for_output(0)
    x, y = _classification_data(n=10)
    model = compiled([keras.layers.Dense(3, activation="softmax", input_shape=(5,))],
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_verbose_1_on_a_terminal_redraws_in_place(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    _fit_for_output(1)
    out = terminal.getvalue()
    epochs = out.split("Epoch ")[1:]
    assert len(epochs) == 2
    for chunk in epochs:
        header, bar = chunk.split("\n", 1)
        # the bar is drawn with carriage returns and ends the epoch with one newline
        assert bar.startswith("\r") and bar.endswith("\n") and bar.count("\n") == 1
        final = bar.rsplit("\r", 1)[1]
        assert re.match(rf"4/4 \[={{30}}\] - \d+s {PER_STEP} - loss: {NUMBER}", final), final


# -- metrics that cannot read the targets -------------------------------------------

@pytest.mark.parametrize("loss,metric,y", [
    ("sparse_categorical_crossentropy", "mse", np.array([0, 1, 2, 1])),
    ("sparse_categorical_crossentropy", "categorical_accuracy", np.array([0, 1, 2, 1])),
    ("sparse_categorical_crossentropy", keras.metrics.BinaryAccuracy(), np.array([0, 1, 2, 1])),
    ("categorical_crossentropy", "sparse_categorical_accuracy", np.eye(3)[[0, 1, 2, 1]]),
])
def test_metric_that_cannot_read_the_targets_is_refused(loss, metric, y):
    """The compiled loop holds integer labels or dense targets, not both: a metric
    for the other kind would compare against nothing, so it is refused by name."""
    model = compiled([keras.layers.Dense(3, activation="softmax", input_shape=(2,))], loss=loss, metrics=[metric])
    x = np.ones((4, 2), dtype=np.float32)
    name = metric if isinstance(metric, str) else metric.name
    with pytest.raises(ValueError, match=name):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=name):
        model.evaluate(x, y, verbose=0)


def test_from_logits_on_a_softmax_output_uses_the_logits_as_keras_does():
    import warnings as _w
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(3).standard_normal((8, 4))
    y = np.arange(8) % 3
    model = keras.Sequential([keras.layers.Input(shape=(4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        loss = model.evaluate(x, y, verbose=0)
    assert any("from_logits=True" in str(c.message) for c in caught)
    w, b = model.layers[0].get_weights()
    logits = x.astype(np.float32) @ w + b
    expected = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(8), y])
    assert abs(loss - expected) < 1e-5
