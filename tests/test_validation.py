"""Bad input gets a clear Python exception naming the argument, before any
compiled code runs, and a rejected call leaves the model exactly as it was:
weights, optimizer slots and step count, loss, optimizer and history."""
import numpy as np
import pytest

import fastnn as keras

N, F, K = 12, 4, 3


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, F)).astype(np.float32), rng.integers(0, K, n)


def classifier(loss="sparse_categorical_crossentropy", units=K, activation="softmax"):
    """A compiled model that has trained one epoch, so its optimizer has state."""
    model = keras.Sequential([keras.layers.Input(shape=(F,)), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dense(units, activation=activation)])
    model.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
    x, y = data()
    if loss == "categorical_crossentropy":
        y = np.eye(K)[y]
    elif loss == "mse":
        y = np.tile(y[:, None], (1, units)).astype(np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained():
    """One trained classifier shared by the tests: each checks that its rejected
    call changed nothing, so sharing it is safe (and a leak would show). Built in a
    fresh session (its names are "sequential", "dense", "dense_1")."""
    keras.backend.clear_session()
    return classifier()


def snapshot(model):
    opt = model.optimizer
    return {"params": model._params.copy(), "slots": None if opt is None or opt.slots is None else opt.slots.copy(),
            "iterations": None if opt is None else opt.iterations, "optimizer": opt, "loss": model.loss,
            "history": model.history, "input_shape": model._input_shape}


def assert_unchanged(model, before):
    after = snapshot(model)
    np.testing.assert_array_equal(after["params"], before["params"])
    if before["slots"] is None:
        assert after["slots"] is None
    else:
        np.testing.assert_array_equal(after["slots"], before["slots"])
    for key in ("iterations", "optimizer", "loss", "history", "input_shape"):
        assert after[key] is before[key] or after[key] == before[key], key


def rejected(model, call, error, match):
    """Runs ``call(model)``, expecting ``error`` matching ``match``, and checks nothing changed."""
    before = snapshot(model)
    with pytest.raises(error, match=match):
        call(model)
    assert_unchanged(model, before)


X, Y = data()
NAN_X = X.copy()
NAN_X[3, 1] = np.nan
INF_X = X.copy()
INF_X[5, 2] = -np.inf

# (id, x, y, keyword arguments, expected message) for fit on the sparse classifier.
FIT_CASES = [
    ("label-too-high", X, np.r_[Y[:-1], K], {}, r"y: labels must be integers in \[0, 2\].*got 3 at row 11"),
    ("label-negative", X, np.r_[-1, Y[1:]], {}, r"y: labels must be integers in \[0, 2\].*got -1 at row 0"),
    ("label-fractional", X, np.r_[Y[:-1], 1.5], {}, r"y: sparse_categorical_crossentropy labels must be whole"
                                                    r" numbers, got 1.5 at row 11"),
    ("label-nan", X, np.r_[Y[:-1], np.nan], {}, r"y contains NaN or inf \(first at row 11"),
    ("one-hot-to-sparse", X, np.eye(K)[Y], {}, r"y for sparse_categorical_crossentropy must be integer class"
                                                r" labels of shape \(12,\), got shape \(12, 3\)"),
    ("x-nan", NAN_X, Y, {}, r"x contains NaN or inf \(first at row 3, column 1\)"),
    ("x-inf", INF_X, Y, {}, r"x contains NaN or inf \(first at row 5, column 2\)"),
    ("x-beyond-float32", np.full((N, F), 1e300), Y, {}, r"x contains NaN or inf .*beyond float32's range"),
    ("too-few-features", X[:, :3], Y, {}, r"x has per-sample shape \(3,\), but the model expects \(4,\)"),
    ("too-many-features", np.c_[X, X], Y, {}, r"x has per-sample shape \(8,\), but the model expects \(4,\)"),
    ("rank-1", X[:, 0], Y, {}, r"x must have shape \(samples, \*features\), got shape \(12,\)"),
    ("rank-3", X.reshape(N, 2, 2), Y, {}, r"x has per-sample shape \(2, 2\), but the model expects \(4,\)"),
    ("length-mismatch", X, Y[:-1], {}, r"y has 11 samples but x has 12"),
    ("empty-x", X[:0], Y[:0], {}, r"x is empty \(0 samples\)"),
    ("no-features", np.zeros((N, 0)), Y, {}, r"x has per-sample shape \(0,\), but the model expects \(4,\)"),
    ("x-strings", X.astype(str), Y, {}, r"x must hold real numbers \(bool, integer or float dtype\), got dtype <U"),
    ("x-objects", np.array([[1.0, None, 2.0, 3.0]] * N, dtype=object), Y, {}, r"x must hold real numbers.*object"),
    ("x-complex", X.astype(np.complex64), Y, {}, r"x must hold real numbers .*complex64"),
    ("x-timedelta", X.astype("m8[s]"), Y, {}, r"x must hold real numbers .*timedelta64"),
    ("x-ragged", [[1.0, 2.0, 3.0, 4.0], [1.0]], Y[:2], {}, r"x could not be converted to an array"),
    ("y-strings", X, Y.astype(str), {}, r"y must hold real numbers"),
    ("y-missing", X, None, {}, r"y is required"),
    ("batch-size-0", X, Y, {"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
    ("batch-size-negative", X, Y, {"batch_size": -4}, r"batch_size must be an integer >= 1, got -4"),
    ("batch-size-float", X, Y, {"batch_size": 2.5}, r"batch_size must be an integer >= 1, got 2.5"),
    ("batch-size-bool", X, Y, {"batch_size": True}, r"batch_size must be an integer >= 1, got True"),
    ("epochs-negative", X, Y, {"epochs": -1}, r"epochs must be an integer >= 0, got -1"),
    ("initial-epoch-negative", X, Y, {"initial_epoch": -2}, r"initial_epoch must be an integer >= 0"),
    ("verbose", X, Y, {"verbose": "loud"}, r"verbose must be 'auto', 0, 1 or 2, got 'loud'"),
    ("split-1", X, Y, {"validation_split": 1.0}, r"validation_split must be a number in \[0, 1\), got 1.0"),
    ("split-negative", X, Y, {"validation_split": -0.1}, r"validation_split must be a number in \[0, 1\)"),
    ("split-string", X, Y, {"validation_split": "0.2"}, r"validation_split must be a number in \[0, 1\)"),
    ("split-nan", X, Y, {"validation_split": float("nan")}, r"validation_split must be a number in \[0, 1\)"),
    ("split-too-large", X, Y, {"validation_split": 0.95}, r"validation_split=0.95 leaves 12 validation samples of 12"),
    ("steps-with-arrays", X, Y, {"steps_per_epoch": 3}, r"steps_per_epoch applies only when x is a generator"),
    ("val-not-tuple", X, Y, {"validation_data": X}, r"validation_data must be a tuple \(x_val, y_val\)"),
    ("val-one-item", X, Y, {"validation_data": (X,)}, r"validation_data must be a tuple .* of length 1"),
    ("val-four-items", X, Y, {"validation_data": (X, Y, None, None)}, r"validation_data must be a tuple"),
    ("val-dict", X, Y, {"validation_data": {"x": X, "y": Y}}, r"validation_data must be a tuple .*got dict"),
    ("val-y-none", X, Y, {"validation_data": (X, None)}, r"validation_data\[1\] \(y\) is required"),
    ("val-x-features", X, Y, {"validation_data": (X[:, :2], Y)}, r"validation_data\[0\] \(x\) has per-sample"
                                                                  r" shape \(2,\)"),
    ("val-x-nan", X, Y, {"validation_data": (NAN_X, Y)}, r"validation_data\[0\] \(x\) contains NaN or inf"),
    ("val-labels", X, Y, {"validation_data": (X, Y + 5)}, r"validation_data\[1\] \(y\): labels must be"),
    ("val-length", X, Y, {"validation_data": (X, Y[:5])}, r"validation_data\[1\] \(y\) has 5 samples but x"),
    ("val-sample-weights", X, Y, {"validation_data": (X, Y, -np.ones(N))}, r"validation_data\[2\] \(sample_weight\) "
                                                                            r"must be non-negative"),
    ("sample-weight-length", X, Y, {"sample_weight": np.ones(N - 1)}, r"sample_weight must have shape \(12,\)"),
    ("sample-weight-nan", X, Y, {"sample_weight": np.r_[np.ones(N - 1), np.nan]}, r"sample_weight contains NaN"),
    ("class-weight-key", X, Y, {"class_weight": {5: 1.0}}, r"class_weight keys must be class indices in \[0, 2\]"),
    ("both-weights", X, Y, {"class_weight": {0: 1.0}, "sample_weight": np.ones(N)}, r"cannot use class_weight and "
                                                                                  r"sample_weight at the same time"),
]


@pytest.mark.parametrize("x, y, kwargs, match", [c[1:] for c in FIT_CASES], ids=[c[0] for c in FIT_CASES])
def test_fit_rejects_bad_input_and_changes_nothing(trained, x, y, kwargs, match):
    rejected(trained, lambda m: m.fit(x, y, **{"verbose": 0, **kwargs}), ValueError, match)


@pytest.mark.parametrize("y, match", [
    (Y, r"y must have shape \(12, 3\) to match the model's output, got \(12,\); integer class labels need "
        r"sparse_categorical_crossentropy"),
    (Y[:, None], r"got \(12, 1\); integer class labels need sparse_categorical_crossentropy"),
    (np.eye(K, dtype=np.int64)[Y] * 2, r"y: categorical_crossentropy needs one-hot .*integer values other than 0 "
                                       r"and 1"),
    (np.eye(4)[Y], r"y must have shape \(12, 3\) to match the model's output, got \(12, 4\)"),
], ids=["labels-1d", "labels-column", "integers-not-one-hot", "too-many-columns"])
def test_categorical_crossentropy_refuses_integer_labels(y, match):
    rejected(classifier("categorical_crossentropy"), lambda m: m.fit(X, y, verbose=0), ValueError, match)


def test_categorical_crossentropy_takes_integer_one_hot_rows():
    model = classifier("categorical_crossentropy")
    history = model.fit(X, np.eye(K, dtype=np.int64)[Y], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_regression_targets_with_nan_or_wrong_width_are_refused():
    model = classifier("mse", units=2, activation=None)
    y = np.ones((N, 2), dtype=np.float64)
    y[7, 1] = np.inf
    rejected(model, lambda m: m.fit(X, y, verbose=0), ValueError, r"y contains NaN or inf \(first at row 7, column 1\)")
    rejected(model, lambda m: m.fit(X, np.ones((N, 3)), verbose=0), ValueError,
             r"y must have shape \(12, 2\) to match the model's output, got \(12, 3\)")


@pytest.mark.parametrize("x, y, match", [
    (NAN_X, Y, r"x contains NaN or inf \(first at row 3, column 1\)"),
    (X, np.r_[Y[:-1], 7], r"y: labels must be integers in \[0, 2\]"),
    (X[:, :3], Y, r"x has per-sample shape \(3,\)"),
    (X, Y[:3], r"y has 3 samples but x has 12"),
    (X.astype(complex), Y, r"x must hold real numbers"),
], ids=["x-nan", "label-range", "features", "length", "complex"])
def test_evaluate_rejects_bad_input(trained, x, y, match):
    rejected(trained, lambda m: m.evaluate(x, y, verbose=0), ValueError, match)


@pytest.mark.parametrize("x, kwargs, match", [
    (INF_X, {}, r"x contains NaN or inf \(first at row 5, column 2\)"),
    (X[:, :3], {}, r"x has per-sample shape \(3,\), but the model expects \(4,\)"),
    (X[:0], {}, r"x is empty"),
    (X.astype(str), {}, r"x must hold real numbers"),
    (None, {}, r"x is required"),
    (X, {"batch_size": 0}, r"batch_size must be an integer >= 1"),
    (X, {"steps": 2}, r"steps applies only when x is a generator or PyDataset"),
], ids=["inf", "features", "empty", "strings", "none", "batch-size", "steps-with-arrays"])
def test_predict_rejects_bad_input(trained, x, kwargs, match):
    rejected(trained, lambda m: m.predict(x, verbose=0, **kwargs), ValueError, match)


def test_fit_and_evaluate_before_compile_are_refused():
    model = keras.Sequential([keras.layers.Input(shape=(F,)), keras.layers.Dense(K)])
    before = snapshot(model)
    with pytest.raises(RuntimeError, match=r"You must call compile\(\) before fit\(\)"):
        model.fit(X, Y, verbose=0)
    with pytest.raises(RuntimeError, match=r"You must call compile\(\) before evaluate\(\)"):
        model.evaluate(X, Y, verbose=0)
    assert_unchanged(model, before)


def test_a_rejected_fit_does_not_build_or_lock_an_unbuilt_model():
    model = keras.Sequential([keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="x must hold real numbers"):
        model.fit(np.zeros((4, 7), dtype=str), [0, 1, 2, 0], verbose=0)
    assert not model.built and model._input_shape is None
    # a stack whose shapes do not fit is checked before any layer is built
    bad = keras.Sequential([keras.layers.Dense(4), keras.layers.Reshape((3,))])
    bad.compile(loss="mse")
    with pytest.raises(ValueError, match=r"Reshape 'reshape': cannot reshape \(4,\) \(4 values\) to \(3,\)"):
        bad.fit(X, np.zeros((N, 3)), verbose=0)
    assert not bad.layers[0].built and bad._input_shape is None
    model.fit(X, Y, epochs=1, verbose=0)     # the unbuilt model still takes data of another width
    assert model.input_shape == (None, F)


@pytest.mark.parametrize("weights, match", [
    (lambda w: w[:-1], r"Model 'sequential' has 4 weight arrays, got 3"),
    (lambda w: w + [w[0]], r"has 4 weight arrays, got 5"),
    (lambda w: [w[0].T] + w[1:], r"weights\[0\] \('dense/kernel'\) must have shape \(4, 5\), got \(5, 4\)"),
    (lambda w: w[:3] + [np.r_[w[3][:-1], np.nan]], r"weights\[3\] \('dense_1/bias'\) contains NaN or inf"),
    (lambda w: w[:3] + [np.full(3, 1e300)], r"weights\[3\] .* NaN or inf \(after conversion to float32\)"),
    (lambda w: w[:3] + [w[3].astype(complex)], r"weights\[3\] \('dense_1/bias'\) must hold real numbers, "
                                               r"got dtype complex128"),
    (lambda w: w[:3] + [w[3].astype(str)], r"weights\[3\] .* must hold real numbers"),
    (lambda w: np.zeros(3), r"set_weights expects a list of arrays .*got ndarray"),
    (lambda w: None, r"set_weights expects a list of arrays .*got NoneType"),
], ids=["too-few", "too-many", "shape", "nan", "overflow", "complex", "strings", "array", "none"])
def test_set_weights_checks_everything_before_writing_anything(trained, weights, match):
    # the first arrays are valid and different: a partial write would show
    good = [w + 1 for w in trained.get_weights()]
    rejected(trained, lambda m: m.set_weights(weights(good)), ValueError, match)


def test_set_weights_accepts_any_real_dtype():
    model = classifier()
    new = [np.ones(w.shape, dtype=np.int64) for w in model.get_weights()]
    model.set_weights(new)
    assert all(np.array_equal(w, np.ones(w.shape)) for w in model.get_weights())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"optimizer": "adamw_typo", "loss": "mse"}, ValueError, r"Unknown optimizer 'adamw_typo'; expected one of"),
    ({"optimizer": 3, "loss": "mse"}, ValueError, r"Could not interpret optimizer 3"),
    ({"optimizer": "sgd", "loss": "mean_squared_eror"}, ValueError, r"Unknown loss 'mean_squared_eror'"),
    ({"optimizer": "sgd"}, ValueError, r"compile\(\) needs a loss"),
    ({"optimizer": "sgd", "loss": lambda a, b: 0}, ValueError, r"could not be traced with keras.ops"),
    ({"optimizer": "sgd", "loss": "mse", "metrics": ["acuracy"]}, ValueError, r"Unknown metric 'acuracy'"),
    ({"optimizer": "sgd", "loss": "mse", "metrics": 5}, ValueError, r"metrics must be a list of metrics, got 5"),
    ({"optimizer": "sgd", "loss": "mse", "jit": True}, TypeError, r"compile\(\) got unexpected arguments \['jit'\]"),
], ids=["optimizer-name", "optimizer-type", "loss-name", "loss-missing", "loss-callable", "metric-name",
        "metrics-type", "unknown-kwarg"])
def test_a_rejected_compile_keeps_the_optimizer_and_its_state(trained, kwargs, error, match):
    rejected(trained, lambda m: m.compile(**kwargs), error, match)


@pytest.mark.parametrize("make, match", [
    (lambda: keras.layers.Dense(-3), r"Dense units must be a positive integer, got -3"),
    (lambda: keras.layers.Dense(0), r"Dense units must be a positive integer, got 0"),
    (lambda: keras.layers.Dense(2.5), r"Dense units must be a positive integer, got 2.5"),
    (lambda: keras.layers.Dense("8"), r"Dense units must be a positive integer, got '8'"),
    (lambda: keras.layers.Dense(True), r"Dense units must be a positive integer, got True"),
    (lambda: keras.layers.Dense(3, activation="rleu"), r"Unknown activation 'rleu'; expected one of"),
    (lambda: keras.layers.Dense(3, activation=np.tanh), r"is not one of fastnn's compiled activations"),
    (lambda: keras.layers.Dense(3, kernel_initializer="glorot"), r"Unknown initializer 'glorot'"),
    (lambda: keras.layers.Dense(3, bias_initializer=7), r"Could not interpret initializer 7"),
    (lambda: keras.layers.Dense(3, input_shape=(0,)), r"input_shape must be a tuple of positive integers"),
    (lambda: keras.layers.Dense(3, name=""), r"Layer name must be a non-empty string"),
    (lambda: keras.layers.Input(shape=(-1, 4)), r"input_shape must be a tuple of positive integers"),
    (lambda: keras.layers.Input(), r"Input needs a shape"),
    (lambda: keras.layers.Input(shape=(None,), dtype="int64"), r"input_shape \(None,\): fastnn needs every "
                                                               r"dimension's size .*pad_sequences"),
    (lambda: keras.layers.Activation("sofmax"), r"Unknown activation 'sofmax'"),
    (lambda: keras.layers.Dropout(1.0), r"Dropout rate must be a number in \[0, 1\), got rate=1.0"),
    (lambda: keras.layers.Dropout(-0.5), r"Dropout rate must be a number in \[0, 1\), got rate=-0.5"),
    (lambda: keras.layers.Dropout("half"), r"Dropout rate must be a number in \[0, 1\), got rate='half'"),
    (lambda: keras.layers.Dropout(float("nan")), r"Dropout rate must be a number in \[0, 1\), got rate=nan"),
    (lambda: keras.layers.Reshape((0, 2)), r"Reshape target_shape must be a tuple of positive integers"),
    (lambda: keras.layers.Reshape(("a",)), r"Reshape target_shape must be a tuple of positive integers"),
    (lambda: keras.layers.Rescaling("1/255"), r"Rescaling scale must be a finite number, got '1/255'"),
    (lambda: keras.layers.Rescaling(1.0, offset=float("inf")), r"Rescaling offset must be a finite number"),
    (lambda: keras.layers.Normalization(mean=[0.0, np.nan], variance=[1, 1]), r"Normalization mean must be finite"),
    (lambda: keras.layers.Normalization(mean=[0.0], variance=[-1.0]), r"Normalization variance must be >= 0"),
    (lambda: keras.layers.Dense(3, kernel_size=3), r"Dense: unexpected arguments \['kernel_size'\]"),
], ids=lambda v: None)
def test_layer_constructors_refuse_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_numpy_integer_units_are_taken():
    layer = keras.layers.Dense(np.int64(3))
    assert layer.units == 3 and type(layer.units) is int


@pytest.mark.parametrize("module, name", [
    (keras.activations, "rleu"), (keras.losses, "crossentropy"), (keras.optimizers, "adamax_"),
    (keras.metrics, "accuraci"), (keras.initializers, "xavier"),
])
def test_get_refuses_unknown_names_and_lists_the_known_ones(module, name):
    with pytest.raises(ValueError, match=rf"Unknown \w+ '{name}'; expected (one of|'accuracy' or one of) \["):
        module.get(name)


def test_set_random_seed_refuses_non_integers():
    for seed in (-1, 1.5, "7", None):
        with pytest.raises(ValueError, match=r"seed must be a non-negative integer"):
            keras.utils.set_random_seed(seed)


def test_large_finite_inputs_whose_float32_sum_overflows_are_accepted():
    """The finiteness check sums the inputs; near float32's limit the float32
    sum overflows to inf although every value is finite, and must not refuse them."""
    from fastnn.models.data import check_finite
    big = np.full((4, 3), 3.0e38, dtype=np.float32)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum(big))
    check_finite(big, "x")          # accepted
    big[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at row 2, column 1\)"):
        check_finite(big, "x")
