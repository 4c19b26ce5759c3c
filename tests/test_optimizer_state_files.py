"""Optimizer state in Keras's layout. Nadam: iteration, learning_rate, momentum and
velocity per weight, then Keras's u_product (checked against Keras 3.15.1's
variable list and values when this was written). Lion: iteration, learning_rate,
momentum per weight, against a file Keras 3.15.1 wrote."""
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np

import fastnn as keras


def nadam_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Nadam(learning_rate=0.01), loss="mse")
    return model


def test_nadam_state_saves_in_keras_layout_and_training_continues_identically(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 3)), rng.random((24, 2))
    model = nadam_model()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)      # 3 steps
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        (tmp_path / "w.h5").write_bytes(zf.read("model.weights.h5"))
    with h5py.File(tmp_path / "w.h5", "r") as h5:
        opt = h5["optimizer/vars"]
        assert len(opt) == 2 + 4 * 2 + 1
        assert int(opt["0"][()]) == 3
        shapes = [opt[str(i)].shape for i in range(2, 10)]
        assert shapes == [(3, 4), (3, 4), (4,), (4,), (4, 2), (4, 2), (2,), (2,)]   # m, v per weight
        u = np.prod([0.9 * (1 - 0.5 * 0.96 ** t) for t in (1, 2, 3)])    # Keras 3's u_product
        np.testing.assert_allclose(opt["10"][()], u, rtol=1e-6)
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.iterations == 3
    np.testing.assert_array_equal(loaded.optimizer.slots, model.optimizer.slots)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(loaded._params, model._params)


# -- Lion: its momentum in Keras's layout, against a file Keras 3.15.1 wrote --------------------------
# (keras_reference/make_lion_reference.py: Lion(0.01, beta_1=0.8, beta_2=0.95), MLP 3-4-2, mse,
# one epoch of 3 steps, saved, a second epoch.) Gradients from float32 GEMMs differ from
# TensorFlow's in the last bits; Lion's step is lr * sign(...), so the weights agree to round-off.
REF = Path(__file__).parent / "keras_reference"
LION = np.load(REF / "lion_reference.npz")
LION_INFO = json.loads((REF / "lion_reference.json").read_text())


def lion_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    model.set_weights([LION[f"init/{i}"] for i in range(4)])
    model.compile(optimizer=keras.optimizers.Lion(learning_rate=0.01, beta_1=0.8, beta_2=0.95), loss="mse")
    return model


def test_lion_trains_as_keras_and_writes_keras_variables(tmp_path):
    model = lion_model()
    model.fit(LION["x"], LION["y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, LION[f"epoch1/{i}"], rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as ours, zipfile.ZipFile(REF / "models" / "lion.keras") as theirs:
        (tmp_path / "ours.h5").write_bytes(ours.read("model.weights.h5"))
        (tmp_path / "theirs.h5").write_bytes(theirs.read("model.weights.h5"))
        assert json.loads(ours.read("config.json"))["compile_config"]["optimizer"]["config"] == \
            {**json.loads(theirs.read("config.json"))["compile_config"]["optimizer"]["config"], "name": "lion"}
    with h5py.File(tmp_path / "ours.h5", "r") as a, h5py.File(tmp_path / "theirs.h5", "r") as b:
        va, vb = a["optimizer/vars"], b["optimizer/vars"]
        assert sorted(va) == sorted(vb) == [str(i) for i in range(len(LION_INFO["optimizer_variables"]))]
        for k in vb:    # iteration, learning_rate, then each weight's momentum
            assert va[k].shape == vb[k].shape and va[k].dtype == vb[k].dtype, k
            np.testing.assert_allclose(va[k][()], vb[k][()], rtol=1e-5, atol=1e-6, err_msg=k)


def test_lion_state_from_a_keras_file_continues_training_as_keras():
    model = keras.models.load_model(REF / "models" / "lion.keras")
    assert type(model.optimizer) is keras.optimizers.Lion and model.optimizer.iterations == 3
    assert (model.optimizer.beta_1, model.optimizer.beta_2) == (0.8, 0.95)
    momentum = [LION[f"optimizer_epoch1/{i}"] for i in range(2, len(LION_INFO["optimizer_variables"]))]
    np.testing.assert_array_equal(model.optimizer.slots[0], np.concatenate([m.ravel() for m in momentum]))
    model.fit(LION["x"], LION["y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, LION[f"epoch2/{i}"], rtol=1e-5, atol=1e-6)


def test_lion_round_trip_continues_bit_identically(tmp_path):
    model = lion_model()
    model.fit(LION["x"], LION["y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    np.testing.assert_array_equal(loaded.optimizer.slots, model.optimizer.slots)
    for m in (model, loaded):
        m.fit(LION["x"], LION["y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(loaded._params, model._params)
