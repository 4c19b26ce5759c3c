"""Nadam's state in Keras's layout: iteration, learning_rate, momentum and
velocity per weight, then Keras's u_product (checked against Keras 3.15.1's
variable list and values when this was written)."""
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
    import zipfile
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
