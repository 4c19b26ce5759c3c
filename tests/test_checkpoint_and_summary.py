"""ModelCheckpoint as Keras users read and configure it, and summary() tables with long names."""
import os

import numpy as np
import pytest

import fastnn as keras


def tiny():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x = np.linspace(-1, 1, 40, dtype=np.float32).reshape(20, 2)
    return model, x, x.sum(axis=1)


def test_model_checkpoint_reports_improved_from_inf_as_keras_does(tmp_path, capsys):
    model, x, y = tiny()
    ckpt = keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor="loss", save_best_only=True, verbose=1)
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[ckpt])
    out = capsys.readouterr().out
    first = history.history["loss"][0]
    assert f"Epoch 1: loss improved from inf to {first:.5f}, saving model to {tmp_path / 'best.keras'}" in out
    ckpt = keras.callbacks.ModelCheckpoint(tmp_path / "acc.keras", monitor="loss", mode="max", save_best_only=True,
                                           verbose=1)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ckpt])
    assert "loss improved from -inf to" in capsys.readouterr().out


def test_model_checkpoint_save_freq_counts_batches_across_epochs_as_keras(tmp_path):
    model, x, y = tiny()
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.weights.h5"), save_weights_only=True,
                                           save_freq=3)
    model.fit(x, y, epochs=2, batch_size=5, verbose=0, callbacks=[ckpt])     # 4 batches an epoch
    # saves after batches 3, 6 (epoch 2 batch 2) and 9 would be epoch 3: Keras's count
    assert sorted(os.listdir(tmp_path)) == ["e1-b3.weights.h5", "e2-b2.weights.h5"]
    saved = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    saved.load_weights(tmp_path / "e2-b2.weights.h5")
    assert not np.array_equal(saved.get_weights()[0], model.get_weights()[0])   # two batches before the end


@pytest.mark.parametrize("save_freq", [0, -3, 2.5, "batch", True])
def test_model_checkpoint_refuses_other_save_freqs(tmp_path, save_freq):
    with pytest.raises(ValueError, match="save_freq must be 'epoch' or a positive integer"):
        keras.callbacks.ModelCheckpoint(tmp_path / "m.keras", save_freq=save_freq)


def test_an_epoch_checkpoint_keeps_training_in_compiled_chunks(tmp_path):
    model, x, y = tiny()
    cbs = keras.callbacks.CallbackList([keras.callbacks.ModelCheckpoint(tmp_path / "m.keras")], model, {})
    assert not cbs.batch_level["train"]


def test_summary_wraps_long_names_and_shapes_so_columns_stay_aligned():
    model = keras.Sequential([keras.Input((784,)),
                              keras.layers.Dense(300, name="a_very_long_layer_name_for_the_first_hidden"),
                              keras.layers.Dense(10, name="out")])
    lines = []
    model.summary(print_fn=lines.append)
    rows = lines[0].splitlines()[4:7]
    assert rows == [" a_very_long_layer_name_for  (None, 300)               235500",
                    " _the_first_hidden (Dense)",
                    " out (Dense)                 (None, 10)                3010"]
    assert max(len(line) for line in lines[0].splitlines()) <= 65
