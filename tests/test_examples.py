"""The examples run on small slices and print figures that beat a chance-level bound;
plot_history draws the learning curves they produce."""
import gzip
import hashlib
import math
import os
import re
import runpy
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastnn as keras
from fastnn.datasets import fashion_mnist, fetch, mnist
from fastnn.datasets.fetch import IdxFile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run_example(name, argv, capsys):
    """Runs ``examples/NAME.py``'s main(argv) in this process; returns what it printed."""
    namespace = runpy.run_path(os.path.join(EXAMPLES, f"{name}.py"), run_name=f"example_{name}")
    namespace["main"](argv)
    return capsys.readouterr().out


def figure(pattern, out):
    match = re.search(pattern, out)
    assert match, f"{pattern!r} not in the example's output:\n{out}"
    return float(match.group(1))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty cache and no mirrors: the examples never reach the network."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(fetch.ENV_VAR, raising=False)
    monkeypatch.setattr(mnist, "MIRRORS", ())
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ())


def test_quickstart_runs_as_a_script_and_learns_the_digits():
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, "quickstart.py"), "--epochs", "10"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Epoch ") == 10
    assert figure(r"test accuracy: ([0-9.]+) on 360 images", done.stdout) > 0.85     # chance: 0.1


def test_fashion_mnist_example_falls_back_to_mnist_and_says_so(shared_data, offline, monkeypatch, capsys):
    monkeypatch.setenv(fetch.ENV_VAR, str(shared_data))          # holds mnist/, not fashion_mnist/
    out = run_example("fashion_mnist_mlp", ["--limit", "2000", "--epochs", "2"], capsys)
    assert "Fashion-MNIST not available" in out and "using MNIST digits" in out
    assert "2000 training and 2000 test images" in out
    assert "Total params: 266,610" in out                          # the 784-300-100-10 MLP
    assert figure(r"test accuracy: ([0-9.]+)", out) > 0.7          # chance: 0.1
    assert figure(r"test loss: ([0-9.]+)", out) < math.log(10)    # below a uniform guess's loss
    predictions = re.findall(r"image \d: predicted (\S+) \(p=[0-9.]+\), true (\S+)", out)
    assert len(predictions) == 3 and all(p in "0123456789" and t in "0123456789" for p, t in predictions)


def test_cnn_example_trains_saves_the_best_model_and_draws_the_feature_maps(shared_data, offline, monkeypatch,
                                                                              capsys, tmp_path):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv(fetch.ENV_VAR, str(shared_data))          # holds mnist/, not fashion_mnist/
    out = run_example("fashion_mnist_cnn", ["--limit", "3000", "--epochs", "2", "--out-dir", str(tmp_path)], capsys)
    assert "Fashion-MNIST not available" in out and "using MNIST digits" in out
    assert "2400 training, 600 validation and 3000 test images" in out
    assert "Total params: 333,526" in out                          # the chapter's CNN
    assert out.count("Epoch ") == 2
    assert figure(r"test accuracy: ([0-9.]+)", out) > 0.85         # chance: 0.1
    assert "feature maps: (1, 28, 28, 32)" in out
    assert (tmp_path / "feature_maps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = keras.saving.load_model(tmp_path / "best-cnn-model.keras")
    assert [type(layer).__name__ for layer in best.layers][:2] == ["Conv2D", "MaxPooling2D"]


def write_tiny_fashion(folder):
    """Four small IDX files under Fashion-MNIST's names, and specs whose .gz MD5s match them."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    specs = []
    for spec, shape, high in zip(fashion_mnist.FILES, [(40, 28, 28), (40,), (10, 28, 28), (10,)],
                                 [256, 10, 256, 10]):
        values = rng.integers(0, high, shape).astype(np.uint8)
        header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
        gz = gzip.compress(header + values.tobytes(), mtime=0)
        (folder / spec.name).write_bytes(gz)
        specs.append(IdxFile(spec.name, shape, gz_md5=hashlib.md5(gz).hexdigest()))
    return tuple(specs)


def test_fashion_mnist_example_uses_data_dir_and_names_the_classes(offline, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fashion_mnist, "FILES", write_tiny_fashion(tmp_path / "fashion"))
    out = run_example("fashion_mnist_mlp", ["--data-dir", str(tmp_path / "fashion"), "--epochs", "1"], capsys)
    assert "not available" not in out
    assert "Fashion-MNIST: 40 training and 10 test images" in out
    predictions = re.findall(r"image \d: predicted (.+) \(p=[0-9.]+\), true (.+)", out)
    assert len(predictions) == 3
    assert all(p in fashion_mnist.CLASS_NAMES and t in fashion_mnist.CLASS_NAMES for p, t in predictions)


def test_binary_classifier_beats_the_majority_class(capsys):
    out = run_example("binary_classifier", ["--epochs", "10"], capsys)
    majority = figure(r"always guessing the commoner class: ([0-9.]+)", out)
    assert figure(r"test accuracy \(argmax of the two outputs\): ([0-9.]+)", out) > max(0.85, majority + 0.1)
    assert figure(r"test accuracy \(binary, per output\): ([0-9.]+)", out) > max(0.85, majority + 0.1)
    assert figure(r"test loss: ([0-9.]+)", out) < math.log(2)      # below a 0.5-everywhere guess


def test_regression_beats_predicting_the_mean(capsys):
    out = run_example("regression", ["--epochs", "40"], capsys)
    mse = figure(r"test mse: ([0-9.]+)", out)
    rmse = figure(r"test rmse: ([0-9.]+)", out)
    baseline = figure(r"predicting the training mean: ([0-9.]+)", out)
    assert rmse < 0.9 * baseline
    assert rmse == pytest.approx(math.sqrt(mse), abs=0.01)         # RootMeanSquaredError is sqrt(mse)
    assert len(re.findall(r"patient \d: predicted [0-9.-]+, true [0-9.]+", out)) == 3


def test_wide_and_deep_beats_the_mean_and_reloads(capsys):
    out = run_example("wide_and_deep", ["--epochs", "40"], capsys)
    # the graph's summary (layer names are numbered across the session, as in Keras)
    assert "Connected to" in out and re.search(r"│ concatenate(_\d+)?\[0\]\[0\] *│", out)
    keys = ["aux_RootMeanSquaredError", "aux_loss", "loss", "main_RootMeanSquaredError", "main_loss"]
    assert f"history.history keys: {keys + ['val_' + k for k in keys]}" in out       # Keras 3's names and order
    baseline = figure(r"predicting the training mean: ([0-9.]+)", out)
    main, aux = figure(r"test rmse: main ([0-9.]+)", out), figure(r"test rmse: main [0-9.]+, aux ([0-9.]+)", out)
    assert main < 0.9 * baseline and aux < 0.9 * baseline
    loss = figure(r"test loss \(0.9 main \+ 0.1 aux\): ([0-9.]+)", out)
    assert loss == pytest.approx(0.9 * main ** 2 + 0.1 * aux ** 2, rel=0.01)    # the weighted sum of the mses
    assert "reloaded from .keras, same predictions: True" in out
    assert figure(r"subclassed model test rmse \(main\): ([0-9.]+)", out) < 0.9 * baseline


def test_custom_training_prints_its_history(capsys):
    out = run_example("custom_training", ["--epochs", "12"], capsys)
    keys = ["binary_accuracy", "loss", "val_binary_accuracy", "val_loss"]
    assert f"history.history keys: {keys}" in out
    curves = {k: [float(v) for v in re.search(rf"^{k}: (.*)$", out, re.M).group(1).split()] for k in keys}
    assert all(len(v) == 12 for v in curves.values())
    assert curves["loss"][-1] < curves["loss"][0] and curves["val_loss"][-1] < curves["val_loss"][0]
    assert curves["val_binary_accuracy"][-1] > 0.85                 # 100 held-out tumours
    assert figure(r"test binary_accuracy: ([0-9.]+)", out) > 0.85   # majority class: 0.64


# -- plot_history -------------------------------------------------------------------------

HISTORY = {"loss": [0.9, 0.5, 0.3], "accuracy": [0.6, 0.8, 0.9],
           "val_loss": [1.0, 0.7, 0.6], "val_accuracy": [0.5, 0.7, 0.75]}


def test_plot_history_draws_train_and_validation_curves_and_saves_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    fig = keras.utils.plot_history(HISTORY, path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert list(panels) == ["loss", "accuracy"]
    for name, ax in panels.items():
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"train", "validation"}
        np.testing.assert_array_equal(lines["train"].get_xdata(), [1, 2, 3])
        np.testing.assert_array_equal(lines["train"].get_ydata(), HISTORY[name])
        np.testing.assert_array_equal(lines["validation"].get_ydata(), HISTORY["val_" + name])


def test_plot_history_takes_the_history_fit_returns(tmp_path):
    pytest.importorskip("matplotlib")
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3))
    model = keras.Sequential([keras.layers.Input(shape=[3]), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd", metrics=["RootMeanSquaredError"])
    history = model.fit(x, x.sum(axis=1), epochs=2, verbose=0)
    fig = keras.utils.plot_history(history, path=tmp_path / "fit.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "RootMeanSquaredError"]
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train"]    # no validation: one curve


def test_plot_history_without_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)             # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"fastnn\[plot\]"):
        keras.utils.plot_history(HISTORY)


@pytest.mark.parametrize("bad", [{}, [0.1, 0.2], {"loss": []}, {"loss": ["a"]}, {"loss": 0.5}])
def test_plot_history_refuses_what_is_not_a_history(bad):
    with pytest.raises(ValueError, match="plot_history"):
        keras.utils.plot_history(bad)


def test_fashion_mnist_example_runs_offline_from_a_fresh_clone_on_the_shipped_digits(offline, capsys):
    out = run_example("fashion_mnist_mlp", ["--epochs", "3"], capsys)
    assert "using the 8x8 digits shipped with fastnn, scaled to 28x28" in out
    assert "1437 training and 360 test images" in out
    assert "Total params: 266,610" in out                          # the same 784-300-100-10 MLP
    assert figure(r"test accuracy: ([0-9.]+)", out) > 0.8          # chance: 0.1


def test_fashion_mnist_example_with_a_data_dir_of_mnist_uses_it(shared_data, offline, capsys):
    out = run_example("fashion_mnist_mlp", ["--data-dir", str(shared_data / "mnist"), "--limit", "1000",
                                            "--epochs", "1"], capsys)
    assert f"Fashion-MNIST not available ({shared_data / 'mnist'} holds MNIST)" in out
    assert "using MNIST digits instead" in out and "1000 training and 1000 test images" in out


def test_imdb_lstm_example_falls_back_to_a_stand_in_and_says_so(offline, monkeypatch, capsys):
    """No IMDB anywhere and no network: the stand-in runs the chapter's model, says so, and learns
    (the stand-in's labels are readable from its words; chance is 0.5)."""
    from fastnn.datasets import text
    monkeypatch.setattr(text, "ORIGIN", "http://127.0.0.1:9/")    # nothing listens there: fails at once
    out = run_example("imdb_lstm", ["--limit", "1500", "--epochs", "6", "--learning-rate", "1e-2"], capsys)
    assert "IMDB not available" in out and "generated stand-in" in out
    assert "1200 training, 300 validation and 1500 test reviews, padded to 100 words" in out
    assert "Total params: 9,353" in out       # Embedding 8,000, LSTM 800 and 544, Dense 9
    assert figure(r"test accuracy: ([0-9.]+) on 1500 reviews", out) > 0.7
