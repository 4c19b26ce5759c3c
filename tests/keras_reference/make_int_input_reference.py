"""Writes int_input_reference.npz and models/int_input_lstm.keras: a text model whose Input declares
integer token ids, as the text chapters write it (``keras.Input(shape=(T,), dtype="int32")`` into an
``Embedding(mask_zero=True)``), trained by Keras, for fastnn's loading test.

    python make_int_input_reference.py     # ~10 s

The npz holds the padded int32 ids, the labels, and Keras's predictions of the trained model.
"""
import numpy as np

from _common import HERE, keras_module


def main():
    keras, tf = keras_module()
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (64, 12)).astype(np.int32)
    ids[:16, 8:] = 0             # post-padded rows
    ids[16:24, :5] = 0           # pre-padded rows
    y = (rng.random(64) < 0.5).astype(np.float32)
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input(shape=(12,), dtype="int32")
    out = L.Dense(1, activation="sigmoid")(L.LSTM(4)(L.Embedding(50, 8, mask_zero=True)(inp)))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(ids, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    path = HERE / "models" / "int_input_lstm.keras"
    model.save(path)
    predictions = np.asarray(model.predict(ids, verbose=0))
    reloaded = keras.models.load_model(path)
    assert np.array_equal(np.asarray(reloaded.predict(ids, verbose=0)), predictions)
    np.savez_compressed(HERE / "int_input_reference.npz", ids=ids, y=y, predictions=predictions)


if __name__ == "__main__":
    main()
