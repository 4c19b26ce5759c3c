"""What a Keras user reaches for in their first hour: Keras's utilities,
and error messages that name the fix."""
import numpy as np
import pytest

import fastnn as keras


def test_to_categorical_matches_keras_for_any_rank_and_num_classes():
    np.testing.assert_array_equal(keras.utils.to_categorical([0, 2, 1]),
                                  [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    out = keras.utils.to_categorical(np.array([[1], [3]]), num_classes=5)    # (n, 1): the 1 is dropped
    assert out.shape == (2, 5) and out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0]])
    grid = np.array([[0, 1], [2, 0]], dtype=np.uint8)
    out = keras.utils.to_categorical(grid, num_classes=3)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.argmax(axis=-1), grid)
    np.testing.assert_array_equal(keras.utils.to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


@pytest.mark.parametrize("x, num_classes, message", [
    ([0, 3], 3, r"labels must be in \[0, 2\] for num_classes=3, got values from 0 to 3"),
    ([-1, 1], None, r"labels must be in \[0, 1\]"),
    ([0.5, 1.0], None, "non-integer values"),
    (["a", "b"], None, "integer class labels"),
    ([0, 1], 0, "num_classes must be a positive integer"),
])
def test_to_categorical_refuses_what_keras_would_mangle(x, num_classes, message):
    with pytest.raises(ValueError, match=message):
        keras.utils.to_categorical(x, num_classes)


def test_normalize_matches_keras():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(keras.utils.normalize(x), [[0.6, 0.8], [0, 0], [2**-0.5, 2**-0.5]])
    np.testing.assert_allclose(keras.utils.normalize(x, axis=0, order=1),
                               x / np.array([4.0, 5.0]))
    with pytest.raises(ValueError, match="order` must be an int >= 1"):
        keras.utils.normalize(x, order=0)


def test_adam_lr_names_learning_rate():
    with pytest.raises(ValueError, match=r"`lr` is not an argument; use `learning_rate`, e\.g\. "
                                         r"Adam\(learning_rate=0\.01\)"):
        keras.optimizers.Adam(lr=0.01)


@pytest.mark.parametrize("labels", [np.array(["cat", "dog"] * 5), ["cat", "dog"] * 5,
                                    np.array(["cat", "dog"] * 5, dtype=object)])
def test_string_labels_are_refused_with_how_to_encode_them(labels):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"^y must hold real numbers .* it holds strings: encode them as numbers "
                                         r"first, e\.g\. labels as class indices with "
                                         r"sklearn\.preprocessing\.LabelEncoder"):
        model.fit(np.zeros((10, 2)), labels, verbose=0)


PUBLIC_MODULES = ["fastnn", "fastnn.layers", "fastnn.losses", "fastnn.metrics", "fastnn.optimizers",
                  "fastnn.optimizers.schedules", "fastnn.activations", "fastnn.initializers", "fastnn.callbacks",
                  "fastnn.regularizers", "fastnn.config", "fastnn.utils", "fastnn.datasets", "fastnn.models",
                  "fastnn.saving"]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_modules_show_only_public_names(name):
    import importlib
    import types
    module = importlib.import_module(name)
    shown = [n for n in dir(module) if not n.startswith("_")]
    assert sorted(shown) == sorted(module.__all__)
    for n in module.__all__:
        value = getattr(module, n)       # every listed name exists
        # modules only where Keras has them too (keras.layers, keras.optimizers.schedules, ...)
        if isinstance(value, types.ModuleType):
            assert name in ("fastnn", "fastnn.optimizers", "fastnn.datasets"), n
    assert not {"np", "os", "inspect", "math", "numbers", "sys", "warnings"} & set(shown)


_FIRST_FIT = """
import numpy as np, fastnn as keras
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
model.compile(loss="mse")
model.fit(np.zeros((4, 2)), np.zeros(4), verbose=2)
model.predict(np.zeros((4, 2)))
"""
NOTICE = "fastnn: compiling kernels for this model; first run on this machine only (a few seconds)"


def test_a_first_run_that_compiles_says_so_once_on_stderr(tmp_path):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    cold = subprocess.run([sys.executable, "-c", _FIRST_FIT], capture_output=True, text=True, env=env, timeout=600)
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr.count(NOTICE) == 1 and NOTICE not in cold.stdout
    assert cold.stderr.index(NOTICE) == 0     # before anything else: the bar would sit empty meanwhile
    warm = subprocess.run([sys.executable, "-c", _FIRST_FIT], capture_output=True, text=True, env=env, timeout=600)
    assert warm.returncode == 0 and NOTICE not in warm.stderr


def test_verbose_0_keeps_the_compile_notice_quiet(monkeypatch, capsys):
    from fastnn.kernels import cache
    monkeypatch.setattr(cache, "_loop_ready", lambda: False)     # as on a machine that never compiled
    monkeypatch.setattr(cache, "_announced", False)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    model.fit(np.zeros((4, 2)), np.zeros(4), verbose=0)
    model.evaluate(np.zeros((4, 2)), np.zeros(4), verbose=0)
    assert capsys.readouterr().err == ""
    model.predict(np.zeros((4, 2)), verbose=1)
    model.predict(np.zeros((4, 2)), verbose=1)
    assert capsys.readouterr().err == NOTICE + "\n"


def test_a_model_whose_layers_compile_says_so_once_unless_quiet(monkeypatch, capsys):
    """With the loop cached, a model of layer kinds new to the machine still compiles (an LSTM's
    kernels for half a minute): its build says so once on stderr, and not in a quiet call."""
    from fastnn.kernels import cache, prebuild
    monkeypatch.setattr(cache, "_loop_ready", lambda: True)
    monkeypatch.setattr(cache, "_announced", False)
    monkeypatch.setattr(prebuild, "share", lambda functions: True)    # as if they were not cached

    def new_model():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(loss="mse")
        return model
    new_model().fit(np.zeros((4, 2)), np.zeros(4), verbose=0)
    new_model().evaluate(np.zeros((4, 2)), np.zeros(4), verbose=0)
    new_model().predict(np.zeros((4, 2)), verbose=0)
    assert capsys.readouterr().err == ""
    new_model().predict(np.zeros((4, 2)), verbose=1)
    new_model().fit(np.zeros((4, 2)), np.zeros(4), verbose=2)
    assert capsys.readouterr().err == cache.LAYER_NOTICE + "\n"


@pytest.mark.parametrize("fn", ["Sequential", "Model.compile", "Model.fit", "Model.evaluate", "Model.predict"])
def test_docstrings_describe_every_argument_and_its_default(fn):
    """help(model.fit) & co list every argument under Args:, each with its default."""
    import inspect
    import re
    obj = keras
    for part in fn.split("."):
        obj = getattr(obj, part)
    doc = inspect.getdoc(obj)
    assert "Args:" in doc and (fn == "Sequential" or "Returns:" in doc or fn == "Model.compile")
    args = doc.split("Args:")[1].split("\nReturns:")[0].split("\nRaises:")[0]
    entries = dict(re.findall(r"^    (\*\*kwargs|\w+): (.*?)(?=^    (?:\*\*kwargs|\w+): |\Z)", args, re.M | re.S))
    params = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters
    for name, p in params.items():
        if name == "self":
            continue
        key = "**kwargs" if p.kind is p.VAR_KEYWORD else name
        assert key in entries, f"{fn}: {key} is not described"
        if p.default is not p.empty:
            assert re.search(r"[Dd]efault|Optional|Required", entries[key]), f"{fn}: {key} has no default stated"
    assert set(entries) <= {("**kwargs" if p.kind is p.VAR_KEYWORD else n) for n, p in params.items()}
