"""Saving and loading in Keras 3's formats (fastnn.saving).

Files written by Keras 3.15 (shared/data/keras_files) must load and predict
as Keras did; files fastnn writes must have the same layout; round trips are
bit-identical, optimizer state travels so training continues exactly; bad
files are refused with errors naming them; nothing in a file is imported or
called; writes are atomic even when the writer is killed.
"""
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import fastnn as keras
from fastnn.models.training import loss_and_gradients

from _util import key_structure, without_object_ids

ROOT = Path(__file__).resolve().parents[1]
KERAS_FILES = ("mnist_mlp", "regressor")


@pytest.fixture(scope="module")
def keras_files(shared_data):
    path = shared_data / "keras_files"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


def zip_json(path, name):
    return json.loads(zipfile.ZipFile(path).read(name))


def h5_of(path):
    """The HDF5 weights of a .keras archive (or a .weights.h5 file), opened read-only."""
    if str(path).endswith(".keras"):
        return h5py.File(io.BytesIO(zipfile.ZipFile(path).read("model.weights.h5")), "r")
    return h5py.File(path, "r")


def h5_layout(h5):
    """Every group and dataset: path -> (kind, shape, dtype, attributes)."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = ("dataset", obj.shape, obj.dtype.str, dict(obj.attrs))
        else:
            out[name] = ("group", None, None, dict(obj.attrs))
    h5.visititems(visit)
    return out


def mnist_like(name="mnist_mlp"):
    """fastnn's spelling of the Keras file's mnist_mlp model."""
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                             keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")], name=name)


def regressor_like():
    return keras.Sequential([keras.Input((8,)), keras.layers.Normalization(),
                             keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)], name="regressor")


def every_layer_model(seed=0):
    """A small model with every layer fastnn has, and data for it."""
    keras.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((96, 4, 3)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    model = keras.Sequential([
        keras.Input((4, 3)), keras.layers.Flatten(), keras.layers.Rescaling(2.0, offset=0.5),
        keras.layers.Normalization(), keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.25),
        keras.layers.Dense(6), keras.layers.Activation("tanh"), keras.layers.Reshape((2, 3)),
        keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")], name="every_layer")
    model.layers[2].adapt(x.reshape(96, -1) * 2 + 0.5)
    return model, x, y


OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "sgd_nesterov": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.01),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adagrad": lambda: keras.optimizers.Adagrad(0.05),
}


def trained_mlp(opt_name, seed=1):
    """A compiled, trained MLP (no dropout, so continuing is deterministic) and its data."""
    keras.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((64, 5)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Normalization(mean=0.5, variance=0.08),
                              keras.layers.Dense(7, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=OPTIMIZERS[opt_name](), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    return model, x, y


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        assert u.shape == v.shape and np.array_equal(u, v)


# -- files written by Keras 3.15 ------------------------------------------------------------
@pytest.mark.parametrize("name", KERAS_FILES)
def test_keras_model_file_predicts_as_keras(keras_files, name):
    model = keras.models.load_model(keras_files / f"{name}.keras")
    io_ = np.load(keras_files / f"{name}_io.npz")
    np.testing.assert_allclose(model.predict(io_["x"], verbose=0), io_["y"], rtol=0, atol=2e-5)
    # Compiled as Keras was, with Keras's optimizer state.
    config = zip_json(keras_files / f"{name}.keras", "config.json")["compile_config"]
    assert model.compiled and isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.optimizer.learning_rate == config["optimizer"]["config"]["learning_rate"]
    with h5_of(keras_files / f"{name}.keras") as h5:
        assert model.optimizer.iterations == int(h5["optimizer/vars/0"][()]) > 0
    assert model._metric_ids == config["metrics"]


@pytest.mark.parametrize("name", KERAS_FILES)
def test_keras_weights_file_loads_into_the_same_architecture(keras_files, name):
    model = mnist_like() if name == "mnist_mlp" else regressor_like()
    model.load_weights(keras_files / f"{name}.weights.h5")
    io_ = np.load(keras_files / f"{name}_io.npz")
    np.testing.assert_allclose(model.predict(io_["x"], verbose=0), io_["y"], rtol=0, atol=2e-5)
    with h5_of(keras_files / f"{name}.weights.h5") as h5:
        dense = model.get_layer(index=-1)
        path = "layers/dense_1/vars"
        assert np.array_equal(dense.get_weights()[0], h5[f"{path}/0"][()])
        assert np.array_equal(dense.get_weights()[1], h5[f"{path}/1"][()])


def test_keras_adam_state_maps_to_slots_and_the_next_step_follows_the_formula(keras_files):
    path = keras_files / "mnist_mlp.keras"
    model = keras.models.load_model(path)
    opt = model.optimizer
    with h5_of(path) as h5:
        stored = [h5[f"optimizer/vars/{i}"][()] for i in range(len(h5["optimizer/vars"]))]
    t0 = int(stored[0])
    # Keras's order after iterations and learning rate: m, v per trainable variable.
    flat_m = np.concatenate([stored[2 + 2 * i].ravel() for i in range(4)])
    flat_v = np.concatenate([stored[3 + 2 * i].ravel() for i in range(4)])
    assert np.all(flat_v >= 0)
    assert np.array_equal(opt.slots[0], flat_m) and np.array_equal(opt.slots[1], flat_v)

    io_ = np.load(keras_files / "mnist_mlp_io.npz")
    x, y = io_["x"][:16], np.argmax(io_["y"][:16], axis=1)
    _, g = loss_and_gradients(model, x, y)
    g = g[:model._n_trainable].astype(np.float64)
    w0 = model._params[:model._n_trainable].astype(np.float64)
    t = t0 + 1
    lr, b1, b2, eps = 0.001, 0.9, 0.999, 1e-7
    m = flat_m + (g - flat_m) * (1 - b1)
    v = flat_v + (g * g - flat_v) * (1 - b2)
    expected = w0 - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert opt.iterations == t
    np.testing.assert_allclose(model._params[:model._n_trainable], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(opt.slots[1], v, rtol=1e-5, atol=1e-12)


REFERENCE = Path(__file__).resolve().parent / "keras_reference" / "saving"


@pytest.mark.parametrize("name, opt_class", [("nesterov", "SGD"), ("rmsprop", "RMSprop"), ("adagrad", "Adagrad")])
def test_keras_optimizer_state_continues_training_as_keras_did(name, opt_class):
    # Files Keras 3.15 wrote (make_saving_reference.py): every layer kind, a frozen Dense, one
    # epoch of training; Keras then trained one more epoch on the same batches.
    ref = np.load(REFERENCE / "reference.npz")
    model = keras.models.load_model(REFERENCE / f"{name}.keras")
    np.testing.assert_allclose(model.predict(ref["x"], verbose=0), ref[f"{name}_predictions"], rtol=0, atol=2e-5)
    assert type(model.optimizer).__name__ == opt_class and model.optimizer.iterations == 4
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.trainable for layer in dense] == [True, False, True]
    model.fit(ref["x"], ref["y"], epochs=1, batch_size=16, shuffle=False, verbose=0)
    after = [w for layer in dense for w in layer.get_weights()]
    for i, w in enumerate(after):
        np.testing.assert_allclose(w, ref[f"{name}_after_{i}"], rtol=1e-4, atol=1e-6)


# -- files fastnn writes have Keras's layout --------------------------------------------------
def test_written_keras_file_has_the_keras_layout(keras_files, tmp_path):
    model = mnist_like()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.random.default_rng(0).random((8, 28, 28)), np.arange(8), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    ours, theirs = tmp_path / "m.keras", keras_files / "mnist_mlp.keras"

    zo, zt = zipfile.ZipFile(ours), zipfile.ZipFile(theirs)
    assert [i.filename for i in zo.infolist()] == [i.filename for i in zt.infolist()]
    assert {i.compress_type for i in zo.infolist()} == {zipfile.ZIP_STORED}
    # config.json: the same document as Keras's, key by key and value by value.
    assert without_object_ids(zip_json(ours, "config.json")) == without_object_ids(zip_json(theirs, "config.json"))
    assert set(zip_json(theirs, "metadata.json")) <= set(zip_json(ours, "metadata.json"))
    # The HDF5 weights: the same groups, datasets, shapes, dtypes and name attributes.
    with h5_of(ours) as a, h5_of(theirs) as b:
        assert h5_layout(a) == h5_layout(b)

    model.save_weights(tmp_path / "m.weights.h5")
    with h5_of(tmp_path / "m.weights.h5") as a, h5_of(keras_files / "mnist_mlp.weights.h5") as b:
        assert h5_layout(a) == h5_layout(b)


def test_written_regressor_matches_keras_key_structure(keras_files, tmp_path):
    model = regressor_like()
    model.layers[0].adapt(np.random.default_rng(0).random((50, 8)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", metrics=["RootMeanSquaredError"])
    model.fit(np.random.default_rng(1).random((8, 8)), np.zeros(8), epochs=1, verbose=0)
    model.save(tmp_path / "r.keras")
    ours, theirs = zip_json(tmp_path / "r.keras", "config.json"), zip_json(keras_files / "regressor.keras", "config.json")
    # Keras records the batch size of the data Normalization was adapted on (1000) as its build shape.
    assert theirs["config"]["layers"][1]["build_config"]["input_shape"] == [1000, 8]
    theirs["config"]["layers"][1]["build_config"]["input_shape"] = [None, 8]
    assert key_structure(without_object_ids(ours)) == key_structure(without_object_ids(theirs))
    assert ours["compile_config"] == {**theirs["compile_config"], "optimizer": ours["compile_config"]["optimizer"]}
    ours_opt, theirs_opt = ours["compile_config"]["optimizer"], theirs["compile_config"]["optimizer"]
    assert {**ours_opt, "config": {**ours_opt["config"], "name": "adam_1"}} == theirs_opt
    # Keras numbers layers globally (dense_2, adam_1); the layout is otherwise identical.
    strip_names = {"name"}
    with h5_of(tmp_path / "r.keras") as a, h5_of(keras_files / "regressor.keras") as b:
        la, lb = h5_layout(a), h5_layout(b)
    assert la.keys() == lb.keys()
    for k in la:
        assert la[k][:3] == lb[k][:3], k
        assert set(la[k][3]) == set(lb[k][3]) <= strip_names


# -- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_round_trip_is_bit_identical(tmp_path, opt_name):
    model, x, y = every_layer_model()
    model.compile(optimizer=OPTIMIZERS[opt_name](), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert loaded.get_config() == model.get_config()
    assert_same_weights(loaded, model)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    a, b = loaded.optimizer, model.optimizer
    assert type(a) is type(b) and a.get_config() == b.get_config()
    assert a.iterations == b.iterations == 3
    assert np.array_equal(a.slots, b.slots)
    assert loaded.get_compile_config() == model.get_compile_config()


def test_weights_only_round_trip_restores_weights_and_optimizer_state(tmp_path):
    model, x, y = every_layer_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save_weights(tmp_path / "w.weights.h5")
    other, _, _ = every_layer_model(seed=7)
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert not np.array_equal(other.get_weights()[3], model.get_weights()[3])
    other.load_weights(tmp_path / "w.weights.h5")
    assert_same_weights(other, model)
    assert np.array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    assert other.optimizer.iterations == model.optimizer.iterations
    assert np.array_equal(other.optimizer.slots, model.optimizer.slots)
    # load_weights also reads the weights inside a .keras archive.
    model.save(tmp_path / "m.keras")
    third, _, _ = every_layer_model(seed=8)
    third.load_weights(tmp_path / "m.keras")
    assert_same_weights(third, model)


def test_normalization_with_given_mean_is_stored_as_keras_does(tmp_path):
    model, x, y = trained_mlp("adam")
    model.save(tmp_path / "m.keras")
    with h5_of(tmp_path / "m.keras") as h5:
        assert len(h5["layers/normalization/vars"]) == 0   # Keras keeps a given mean as a constant
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_uncompiled_and_unbuilt_models_round_trip(tmp_path):
    model = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(2)])
    model.save(tmp_path / "unbuilt.keras")
    record = zip_json(tmp_path / "unbuilt.keras", "config.json")
    assert record["compile_config"] == {} and "build_config" not in record
    loaded = keras.models.load_model(tmp_path / "unbuilt.keras")
    assert not loaded.built and not loaded.compiled and [l.units for l in loaded.layers] == [3, 2]

    model.build((None, 4))
    model.compile(loss="mse")   # compiled, optimizer not yet built: Keras stores iterations and rate only
    model.save(tmp_path / "built.keras")
    with h5_of(tmp_path / "built.keras") as h5:
        assert sorted(h5["optimizer/vars"]) == ["0", "1"]
    loaded = keras.models.load_model(tmp_path / "built.keras")
    assert loaded.compiled and isinstance(loaded.optimizer, keras.optimizers.RMSprop)
    assert loaded.optimizer.slots is None and loaded.optimizer.iterations == 0
    assert_same_weights(loaded, model)


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_continue_training_after_load_equals_continuing_the_original(tmp_path, opt_name):
    model, x, y = trained_mlp(opt_name)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    fresh = keras.models.load_model(tmp_path / "m.keras", compile=False)
    fresh.compile(optimizer=OPTIMIZERS[opt_name](), loss="sparse_categorical_crossentropy")
    for m in (model, loaded, fresh):
        m.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert_same_weights(loaded, model)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 12
    assert np.array_equal(loaded.optimizer.slots, model.optimizer.slots)
    if opt_name != "sgd":   # plain SGD has no state: a fresh optimizer continues the same way
        # Without the saved state the same continuation ends elsewhere: the state is what matters.
        assert not np.array_equal(fresh.get_weights()[-2], model.get_weights()[-2])


def test_another_optimizers_state_is_skipped_with_a_warning(tmp_path):
    adam, x, y = trained_mlp("adam")
    rms, _, _ = trained_mlp("rmsprop", seed=4)
    rms.save_weights(tmp_path / "rms.weights.h5")
    slots, iterations = adam.optimizer.slots.copy(), adam.optimizer.iterations
    with pytest.warns(UserWarning, match="Skipping the optimizer state.*holds 6 variables.*Adam.*10"):
        adam.load_weights(tmp_path / "rms.weights.h5")
    assert_same_weights(adam, rms)
    assert np.array_equal(adam.optimizer.slots, slots) and adam.optimizer.iterations == iterations


# -- refusals -------------------------------------------------------------------------------
def saved_model_file(tmp_path):
    model, x, y = trained_mlp("adam")
    model.save(tmp_path / "good.keras")
    model.save_weights(tmp_path / "good.weights.h5")
    return model, (tmp_path / "good.keras").read_bytes(), (tmp_path / "good.weights.h5").read_bytes()


def test_damaged_and_foreign_files_are_refused_naming_the_file(tmp_path):
    model, good, good_weights = saved_model_file(tmp_path)
    cases = {"truncated_10.keras": good[:10], "truncated_half.keras": good[:len(good) // 2],
             "truncated_1.keras": good[:-1], "random.keras": np.random.default_rng(0).bytes(5000),
             "empty.keras": b"", "weights_only.keras": good_weights,
             "npz.keras": _npz_bytes(), "text.keras": b'{"class_name": "Sequential"}'}
    middle = len(good) // 2
    cases["flipped.keras"] = good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1:]
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises((ValueError, OSError), match=name.replace(".", r"\.")):
            keras.models.load_model(path)
    with pytest.raises(OSError, match="missing.keras"):
        keras.models.load_model(tmp_path / "missing.keras")
    with pytest.raises(OSError):
        keras.models.load_model(tmp_path)


def _npz_bytes():
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(3))
    return buf.getvalue()


def test_damaged_weights_files_are_refused_and_change_nothing(tmp_path):
    model, good, good_weights = saved_model_file(tmp_path)
    before = model.get_weights()
    slots, iterations = model.optimizer.slots.copy(), model.optimizer.iterations
    cases = {"cut_10.weights.h5": good_weights[:10], "cut_half.weights.h5": good_weights[:len(good_weights) // 2],
             "cut_1.weights.h5": good_weights[:-1], "noise.weights.h5": np.random.default_rng(1).bytes(4000),
             "void.weights.h5": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises((ValueError, OSError), match=name.replace(".", r"\.")):
            model.load_weights(tmp_path / name)
    # A well-formed file for another model: refused naming the layer, nothing written.
    other = keras.Sequential([keras.Input((5,)), keras.layers.Normalization(mean=0.5, variance=0.08),
                              keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)])
    other.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(ValueError, match="other.weights.h5.*dense"):
        model.load_weights(tmp_path / "other.weights.h5")
    for u, v in zip(before, model.get_weights()):
        assert np.array_equal(u, v)
    assert np.array_equal(model.optimizer.slots, slots) and model.optimizer.iterations == iterations


def write_keras(path, record, weights=b""):
    """A .keras archive holding ``record`` as config.json."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(record))
        zf.writestr("model.weights.h5", weights)


def test_configs_naming_code_are_refused_and_nothing_is_imported(tmp_path, monkeypatch):
    # A module that records being imported: no file may make fastnn import it.
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_fastnn_probe.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model, _, _ = saved_model_file(tmp_path)
    good = zip_json(tmp_path / "good.keras", "config.json")
    weights = zipfile.ZipFile(tmp_path / "good.keras").read("model.weights.h5")

    def variant(edit):
        record = json.loads(json.dumps(good))
        edit(record)
        return record

    dense = lambda r: r["config"]["layers"][2]   # noqa: E731  (InputLayer, Normalization, Dense, Dense)
    cases = {
        "layer_class": (lambda r: dense(r).update(class_name="os.system"), "os.system"),
        "layer_module": (lambda r: dense(r).update(module="evil_fastnn_probe"), "evil_fastnn_probe"),
        "layer_registered": (lambda r: dense(r).update(registered_name="evil_fastnn_probe>Dense"),
                             "not a Keras built-in"),
        "unknown_layer": (lambda r: dense(r).update(class_name="ConvLSTM2D"), "'dense'.*ConvLSTM2D"),
        "activation": (lambda r: dense(r)["config"].update(activation="evil_fastnn_probe.run"), "activation"),
        "activation_record": (lambda r: dense(r)["config"].update(
            activation={"module": "evil_fastnn_probe", "class_name": "function", "config": "__import__"}),
            "activation"),
        "initializer": (lambda r: dense(r)["config"].update(kernel_initializer={
            "module": "evil_fastnn_probe", "class_name": "subprocess.Popen", "config": {}}), "initializer"),
        "regularizer": (lambda r: dense(r)["config"].update(kernel_regularizer={
            "module": "keras.regularizers", "class_name": "OrthogonalRegularizer", "config": {}}),
            "OrthogonalRegularizer"),
        "model_class": (lambda r: r.update(class_name="MyModel"), "MyModel"),
        "model_module": (lambda r: r.update(module="evil_fastnn_probe"), "evil_fastnn_probe"),
        "loss": (lambda r: r["compile_config"].update(loss="builtins.eval"), "builtins.eval"),
        "loss_record": (lambda r: r["compile_config"].update(loss={
            "module": "evil_fastnn_probe", "class_name": "function", "config": "system"}), "system"),
        "optimizer": (lambda r: r["compile_config"].update(optimizer={
            "module": "evil_fastnn_probe", "class_name": "__import__", "config": {}}), "__import__"),
        "metric": (lambda r: r["compile_config"].update(metrics=["exec"]), "exec"),
        "ema": (lambda r: r["compile_config"]["optimizer"]["config"].update(use_ema=True), "use_ema"),
        "dtype": (lambda r: dense(r)["config"].update(dtype="mixed_float16"), "float32"),
    }
    for name, (edit, message) in cases.items():
        path = tmp_path / f"{name}.keras"
        write_keras(path, variant(edit), weights)
        with pytest.raises(ValueError, match=f"{name}\\.keras.*{message}"):
            keras.models.load_model(path)
    assert not marker.exists() and "evil_fastnn_probe" not in sys.modules


def test_save_validates_its_path(tmp_path):
    model, _, _ = trained_mlp("sgd_nesterov")
    with pytest.raises(ValueError, match=r"\.keras"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(tmp_path / "m.h5")
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError, match="m.keras"):
        model.save(tmp_path / "m.keras", overwrite=False)
    with pytest.raises(OSError, match="no_such_dir"):
        model.save(tmp_path / "no_such_dir" / "m.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]   # no temporary files left behind


# -- ModelCheckpoint ------------------------------------------------------------------------
class ScriptedLogs(keras.callbacks.Callback):
    """Sets the monitored value of each epoch, so the best epoch is known in advance."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values, self.weights = key, values, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights.append(self.model.get_weights())


@pytest.mark.parametrize("monitor, values, best", [
    ("val_loss", [0.5, 0.3, 0.4, 0.2, 0.6], 3),           # mode auto: a loss goes down
    ("val_accuracy", [0.5, 0.9, 0.4, 0.8, 0.7], 1),       # mode auto: an accuracy goes up
])
def test_model_checkpoint_best_only_keeps_the_best_epoch(tmp_path, monitor, values, best):
    model, x, y = trained_mlp("adam")
    script = ScriptedLogs(monitor, values)
    ckpt = keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor=monitor, save_best_only=True)
    model.fit(x, y, epochs=5, batch_size=16, verbose=0, validation_data=(x, y), callbacks=[script, ckpt])
    saved = keras.models.load_model(tmp_path / "best.keras")
    for u, v in zip(saved.get_weights(), script.weights[best]):
        assert np.array_equal(u, v)
    assert not np.array_equal(saved.get_weights()[-2], script.weights[-1][-2])
    assert ckpt.best == values[best]


def test_model_checkpoint_formats_the_path_and_saves_weights_only(tmp_path):
    model, x, y = trained_mlp("rmsprop")
    script = ScriptedLogs("val_loss", [0.25, 0.125, 0.5])
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "ck" / "e{epoch:02d}-{val_loss:.2f}.weights.h5"),
                                           save_weights_only=True)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x, y), callbacks=[script, ckpt])
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "e01-0.25.weights.h5", "e02-0.12.weights.h5", "e03-0.50.weights.h5"]
    other, _, _ = trained_mlp("rmsprop", seed=5)
    other.load_weights(tmp_path / "ck" / "e02-0.12.weights.h5")
    for u, v in zip(other.get_weights(), script.weights[1]):
        assert np.array_equal(u, v)
    with pytest.raises(ValueError, match=r"\.keras"):
        keras.callbacks.ModelCheckpoint(tmp_path / "m.weights.h5")
    with pytest.raises(KeyError, match="val_auc"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[keras.callbacks.ModelCheckpoint(str(tmp_path / "{val_auc}.keras"))])


# -- atomic writes --------------------------------------------------------------------------
_SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    import fastnn as keras
    path = sys.argv[1]
    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(2048), keras.layers.Dense(512)])
    print("start", flush=True)
    k = 0
    while True:
        k += 1
        model.set_weights([np.full(w.shape, k, np.float32) for w in model.get_weights()])
        model.save(path) if path.endswith(".keras") else model.save_weights(path)
        print(k, flush=True)
""")


def _kill_while_saving(path, saves_before_kill):
    """Runs the saver; once it has finished ``saves_before_kill`` saves, waits
    for its next temporary file to appear (a write in progress) and SIGKILLs
    it then. Returns (last finished save, whether a temporary file was seen)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        last = 0
        for line in proc.stdout:
            last = 0 if line.strip() == "start" else int(line)
            if last >= saves_before_kill:
                break
        deadline, seen = time.monotonic() + 20, False
        while not seen and time.monotonic() < deadline and proc.poll() is None:
            seen = any(path.parent.glob(f".{path.name}.*.tmp"))
            if not seen:
                time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return last, seen


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killing_a_process_mid_save_leaves_no_partial_file(tmp_path):
    # Killed while writing its 4th save of a 1.6 M-parameter model: the file is a complete earlier save.
    path = tmp_path / "model.keras"
    last, seen = _kill_while_saving(path, saves_before_kill=3)
    assert seen, "the saver never showed a write in progress"
    model = keras.models.load_model(path)
    values = {float(v) for w in model.get_weights() for v in np.unique(w)}
    assert len(values) == 1 and last <= values.pop() <= last + 1
    # Killed during its first save: the file is absent, or (had the write just finished) complete.
    path = tmp_path / "first.weights.h5"
    _, seen = _kill_while_saving(path, saves_before_kill=0)
    assert seen
    if path.exists():
        model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(2048), keras.layers.Dense(512)])
        model.load_weights(path)
        assert {float(v) for w in model.get_weights() for v in np.unique(w)} == {1.0}
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("model.keras", "first.weights.h5")]
    assert all(n.startswith(".") and n.endswith(".tmp") for n in leftovers), leftovers


# -- interchange with Keras itself (only where keras is installed) -------------------------
def _keras():
    return pytest.importorskip("keras", reason="keras is not installed (optional: saves/loads across to Keras)")


def test_keras_loads_what_fastnn_saves_and_continues_identically(tmp_path):
    real = _keras()
    model, x, y = trained_mlp("adam")
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    theirs = real.models.load_model(tmp_path / "m.keras")
    saved_predictions = model.predict(x, verbose=0)
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), saved_predictions, rtol=0, atol=2e-5)
    with h5_of(tmp_path / "m.keras") as h5:
        stored = [h5[f"optimizer/vars/{i}"][()] for i in range(len(h5["optimizer/vars"]))]
    assert len(theirs.optimizer.variables) == len(stored)
    for var, value in zip(theirs.optimizer.variables, stored):
        assert np.array_equal(np.asarray(var), value)
    # Both continue on the same batches: Keras's float32 maths and fastnn's agree to round-off.
    theirs.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    dense = [(a, b) for a, b in zip(theirs.layers, model.layers) if isinstance(b, keras.layers.Dense)]
    assert len(dense) == 2   # (Keras keeps a given Normalization mean as a constant, not a weight)
    for a, b in dense:
        for u, v in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(np.asarray(u), v, rtol=1e-4, atol=1e-6)
    again = real.models.clone_model(theirs)
    again.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_allclose(np.asarray(again.predict(x, verbose=0)), saved_predictions, rtol=0, atol=2e-5)


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_fastnn_loads_what_keras_saves_and_continues_identically(tmp_path, opt_name):
    real = _keras()
    rng = np.random.default_rng(3)
    x = rng.random((64, 4, 3)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    opt = OPTIMIZERS[opt_name]().get_config()
    opt = {k: v for k, v in opt.items() if k != "name"}
    cls = {"sgd": "SGD", "sgd_nesterov": "SGD", "rmsprop": "RMSprop", "adam": "Adam", "adagrad": "Adagrad"}[opt_name]
    L = real.layers
    theirs = real.Sequential([real.Input((4, 3)), L.Flatten(), L.Rescaling(0.5), L.Normalization(),
                              L.Dense(8, activation="relu"), L.Dropout(0.0), L.Dense(6), L.Activation("tanh"),
                              L.Reshape((3, 2)), L.Flatten(), L.Dense(3, activation="softmax")])
    theirs.layers[2].adapt(x.reshape(64, -1) * 0.5)
    theirs.compile(optimizer=getattr(real.optimizers, cls)(**opt), loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    theirs.fit(x, y, epochs=1, batch_size=16, verbose=0)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    model = keras.models.load_model(tmp_path / "k.keras")
    saved_predictions = model.predict(x, verbose=0)
    np.testing.assert_allclose(saved_predictions, np.asarray(theirs.predict(x, verbose=0)), rtol=0, atol=2e-5)
    assert model.optimizer.iterations == int(theirs.optimizer.iterations) == 4
    # Both continue on the same batches (Dropout(0.0): no random masks to differ).
    theirs.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for u, v in zip(model.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(u, np.asarray(v), rtol=1e-4, atol=1e-6)
    other = keras.models.load_model(tmp_path / "k.keras", compile=False)
    other.load_weights(tmp_path / "k.weights.h5")
    assert not other.compiled
    assert np.array_equal(other.predict(x, verbose=0), saved_predictions)


def test_round_trip_with_batchnorm_regularizer_leakyrelu_dropout_and_amsgrad(tmp_path):
    """Layers and options that came after the first file format: moving statistics,
    regularizer configs and the third Adam slot (amsgrad) all travel bit-exactly."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(shape=(6,)),
                              keras.layers.Dense(8, kernel_regularizer=keras.regularizers.l2(0.01)),
                              keras.layers.BatchNormalization(), keras.layers.LeakyReLU(),
                              keras.layers.Dropout(0.2), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(amsgrad=True), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 6)), rng.integers(0, 3, 64)
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    np.testing.assert_array_equal(loaded.optimizer.slots, model.optimizer.slots)
    assert loaded.layers[0].kernel_regularizer.get_config() == {"l2": 0.01}
