"""Random shapes, dtypes and values through fit, evaluate and predict: each call
either succeeds with finite results or raises a documented exception
(ValueError for bad data or arguments, NonFiniteLossError for a diverging
fit), and a rejected call on in-memory data leaves the model unchanged.
Never a crash, a hang, or training on garbage.

Examples are derandomized (a fixed sequence), so CI is repeatable; values
stay within +-1e3 where they are finite, so a fresh model's outputs are
finite too, and NaN, inf and 1e300 (inf in float32) are injected on purpose."""
import itertools

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings, strategies as st  # noqa: E402

import fastnn as keras  # noqa: E402
from fastnn.errors import NonFiniteLossError  # noqa: E402

# Repeats weight the draw: mostly what users pass, often enough what they should not.
DTYPES = ["float32"] * 12 + ["float64"] * 6 + ["float16", "int8", "uint8", "int64", "bool", "complex64", "object",
                                             "<U4", "datetime64[s]"]
LOSSES = {"sparse_categorical_crossentropy": "softmax", "categorical_crossentropy": "softmax",
          "binary_crossentropy": "sigmoid", "mse": None}
SPECIALS = [None] * 20 + [np.nan, np.inf, -np.inf, 1e300, -1.0, 0.5, 7.0]


def cast(values, dtype):
    """``values`` (float64) as ``dtype``, the way a user might hold them."""
    with np.errstate(invalid="ignore", over="ignore"):
        if dtype == "object":
            return values.astype(object)
        if dtype == "<U4":
            return values.astype(str)
        if dtype.startswith("datetime"):
            return np.nan_to_num(values).astype(np.int64).astype(dtype)
        if dtype[0] in "iub":
            return np.nan_to_num(values, posinf=0, neginf=0).astype(dtype)
        return values.astype(dtype)


@st.composite
def array(draw, shape, low, high, integers=False):
    """An array of ``shape``: values in [low, high], maybe one special value
    (NaN, inf, 1e300, or a label out of range or fractional), in a random dtype."""
    n = int(np.prod(shape))
    values = np.asarray(draw(st.lists(st.integers(int(low), int(high)) if integers else
                                      st.floats(low, high, allow_nan=False, width=32),
                                      min_size=n, max_size=n)), dtype=np.float64).reshape(shape)
    special = draw(st.sampled_from(SPECIALS))
    if special is not None and n:
        values.flat[draw(st.integers(0, n - 1))] = special
    return cast(values, draw(st.sampled_from(DTYPES)))


@st.composite
def case(draw):
    features, units = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    loss = draw(st.sampled_from(sorted(LOSSES)))
    n = draw(st.integers(1, 9))
    n = draw(st.sampled_from([n] * 9 + [0]))
    x_shape = draw(st.sampled_from([(n, features)] * 20 + [(n, features + 1), (n,), (n, features, 1), (n, 0),
                                                           (n + 1, features)]))
    x = draw(array(x_shape, -1e3, 1e3))
    if loss == "sparse_categorical_crossentropy":
        y = draw(array(draw(st.sampled_from([(n,)] * 12 + [(n, 1), (n, units), (n + 1,)])), 0, units - 1, True))
    else:
        y_shape = draw(st.sampled_from([(n, units)] * 12 + [(n,), (n, 1), (n, units + 1), (n + 1, units)]))
        y = draw(array(y_shape, -1e3, 1e3) if loss == "mse" else array(y_shape, 0, 1, integers=True))
    return {"features": features, "units": units, "loss": loss, "x": x, "y": y,
            "optimizer": draw(st.sampled_from(["sgd", "adam", "rmsprop", "adagrad"])),
            "batch_size": draw(st.sampled_from([None, 1, 4, 32, 3] * 4 + [0, -3, 2.5])),
            "epochs": draw(st.sampled_from([1, 2] * 8 + [0, -1])),
            "validation_split": draw(st.sampled_from([0.0] * 12 + [0.3, 1.5]))}


def container(kind, x, y, call, folder):
    """x and y as the user hands them: arrays, lists, memmaps or a generator of batches."""
    if kind == "list":
        return x.tolist(), y.tolist()
    if kind == "memmap" and x.dtype != object and y.dtype != object:
        maps = []
        for name, a in (("x", x), ("y", y)):
            path = folder / f"{name}{next(COUNT)}.npy"
            np.save(path, a)
            maps.append(np.load(path, mmap_mode="r"))
        return maps
    if kind == "generator":
        def batches():
            for i in range(0, min(len(x), len(y)), 4):
                yield (x[i:i + 4], y[i:i + 4]) if call != "predict" else x[i:i + 4]
        return batches(), None
    return x, y


COUNT = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.filterwarnings("ignore:The training data ran out")   # a generator drawn with epochs=2
@pytest.mark.parametrize("kind", ["array", "list", "memmap", "generator"])
@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(c=case())
def test_random_input_never_crashes_and_is_either_used_or_refused(folder, call, kind, c):
    c = {**c, "call": call, "container": kind}
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(shape=(c["features"],)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(c["units"], activation=LOSSES[c["loss"]])])
    model.compile(loss=c["loss"], optimizer=c["optimizer"], metrics=["accuracy"])
    x, y = container(c["container"], c["x"], c["y"], c["call"], folder)
    before = model._params.copy()
    try:
        if c["call"] == "fit":
            result = model.fit(x, y, batch_size=c["batch_size"], epochs=c["epochs"], verbose=0,
                               validation_split=c["validation_split"])
        elif c["call"] == "evaluate":
            result = model.evaluate(x, y, batch_size=c["batch_size"], verbose=0)
        else:
            result = model.predict(x, batch_size=c["batch_size"], verbose=0)
    except ValueError as exc:
        event(f"{c['call']} on a {c['container']} refused")
        assert str(exc)
        if c["container"] != "generator":       # a generator's earlier chunks may have trained
            np.testing.assert_array_equal(model._params, before)
            assert model.optimizer.slots is None or model.optimizer.iterations == 0
        return
    except NonFiniteLossError:
        event("fit stopped on a non-finite loss")
        assert c["call"] == "fit" and np.isfinite(model._params).all()
        return
    event(f"{c['call']} on a {c['container']} succeeded")
    assert np.isfinite(model._params).all()
    if c["call"] == "fit":
        assert all(np.isfinite(v).all() for v in result.history.values())
    elif c["call"] == "evaluate":
        assert np.isfinite(result).all()
    else:
        assert result.dtype == np.float32 and result.shape[1:] == (c["units"],) and np.isfinite(result).all()
