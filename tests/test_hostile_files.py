"""Hostile model files: small files that would tie up memory or CPU, and
paths that are not files. Each is refused (or loaded) at a cost bounded by
what the file's config declares."""
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastnn as keras
from fastnn import initializers
from fastnn.models import program


def small_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((4, 4)), np.zeros((4, 2)), verbose=0)
    return model


def members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_archive(path, files, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def test_a_weights_member_larger_than_the_config_allows_is_refused_before_inflating(tmp_path):
    small_model().save(tmp_path / "m.keras")
    files = members(tmp_path / "m.keras")
    # 64 MiB that deflate packs about 250:1 (within any ratio cap) behind a 25-weight model's config
    block = np.random.default_rng(0).bytes(256)
    files["model.weights.h5"] = files["model.weights.h5"] + block * (64 << 12)
    write_archive(tmp_path / "bomb.keras", files, zipfile.ZIP_DEFLATED)
    assert os.path.getsize(tmp_path / "bomb.keras") < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"'model.weights.h5' is 67,[\d,]+ bytes, more than this model can take"):
            keras.models.load_model(tmp_path / "bomb.keras")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_shapes_are_checked_before_a_declared_layer_is_allocated(tmp_path):
    small_model().save(tmp_path / "m.keras")
    files = members(tmp_path / "m.keras")
    config = json.loads(files["config.json"])
    config["config"]["layers"][2]["config"]["units"] = 2**24      # 67 M weights, in a file of a few KiB
    files["config.json"] = json.dumps(config)
    write_archive(tmp_path / "huge.keras", files)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"the config declares 67,108,879 weights, but the weights file holds 23 "
                                             r"values"):
            keras.models.load_model(tmp_path / "huge.keras")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_loading_builds_the_model_once_and_runs_no_initializer(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((1,))] + [keras.layers.Dense(1) for _ in range(300)])
    model.save(tmp_path / "deep.keras")
    packs = []
    real_pack = program.pack
    monkeypatch.setattr(program, "pack", lambda layers: packs.append(len(layers)) or real_pack(layers))

    def no_initializer(self, shape, dtype=None):
        raise AssertionError("an initializer ran while loading")
    monkeypatch.setattr(initializers.GlorotUniform, "__call__", no_initializer)
    loaded = keras.models.load_model(tmp_path / "deep.keras")
    assert packs == [300]
    x = np.linspace(-1, 1, 8).reshape(8, 1)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_duplicate_layer_names_in_a_config_are_still_refused(tmp_path):
    config = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="a"),
                               keras.layers.Dense(1, name="b")]).get_config()
    config["layers"][2]["config"]["name"] = "a"
    with pytest.raises(ValueError, match="A layer named 'a' is already in the model"):
        keras.Sequential.from_config(config)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("load", ["model", "weights"])
def test_paths_that_are_not_regular_files_are_refused_without_reading(tmp_path, load):
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)         # opening it would wait for a writer forever
    for path in ("/dev/zero", fifo):
        with pytest.raises(ValueError, match="not a regular file"):
            if load == "model":
                keras.models.load_model(path)
            else:
                small_model().load_weights(path)
