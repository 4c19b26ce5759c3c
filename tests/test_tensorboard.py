"""keras.callbacks.TensorBoard (issue 21): the event files it writes, read back here
without TensorBoard or TensorFlow (TFRecord framing parsed and its CRCs checked by
hand, records decoded with the Event protobuf tensorboardX ships), hold the tags, steps
and values Keras 3 logs, equal to History's."""
import struct
import sys

import numpy as np
import pytest

import fastnn as keras

# tensorboardX is in the test extra (pyproject.toml), so this file runs in CI rather than skipping.
from tensorboardX.proto.event_pb2 import Event


def _crc32c(data):
    """CRC-32C (Castagnoli), bit by bit: TFRecord's checksum."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked_crc(data):
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(folder):
    """{tag: [(step, value), ...]} from every event file in ``folder``: TFRecords of
    [length u64][masked crc of length u32][Event bytes][masked crc of bytes u32]."""
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    scalars = {}
    for path in files:
        data, at = path.read_bytes(), 0
        while at < len(data):
            header = data[at:at + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[at + 8:at + 12])[0] == _masked_crc(header)
            record = data[at + 12:at + 12 + length]
            assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == _masked_crc(record)
            at += 16 + length
            event = Event.FromString(record)
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                number = value.simple_value if kind == "simple_value" else value.tensor.float_val[0]
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40)


def _as_logged(values):
    """History's float64 values as the event files hold them (float32)."""
    return [float(np.float32(v)) for v in values]


def test_epoch_scalars_are_keras_tags_steps_and_history_values(tmp_path):
    x, y = _data()
    model = _model()
    hist = model.fit(x[:32], y[:32], epochs=3, batch_size=8, verbose=0, validation_data=(x[32:], y[32:]),
                     callbacks=[keras.callbacks.TensorBoard(log_dir=tmp_path / "logs")])
    train, valid = read_events(tmp_path / "logs" / "train"), read_events(tmp_path / "logs" / "validation")
    assert sorted(train) == ["epoch_accuracy", "epoch_learning_rate", "epoch_loss"]
    for key in ("loss", "accuracy"):
        assert train[f"epoch_{key}"] == list(zip([0, 1, 2], _as_logged(hist.history[key])))
        assert valid[f"epoch_{key}"] == list(zip([0, 1, 2], _as_logged(hist.history[f"val_{key}"])))
    assert train["epoch_learning_rate"] == [(e, float(np.float32(0.01))) for e in range(3)]
    # after each epoch's validation, at the optimizer's iteration count (4 steps per epoch)
    assert valid["evaluation_loss_vs_iterations"] == list(zip([4, 8, 12], _as_logged(hist.history["val_loss"])))
    assert sorted(valid) == ["epoch_accuracy", "epoch_loss", "evaluation_accuracy_vs_iterations",
                             "evaluation_loss_vs_iterations"]


def test_batch_scalars_every_n_batches_hold_the_running_logs(tmp_path):
    x, y = _data()
    model = _model()
    seen = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(dict(logs)))
    model.fit(x[:32], y[:32], epochs=2, batch_size=8, verbose=0,
              callbacks=[keras.callbacks.TensorBoard(log_dir=tmp_path, update_freq=3), record])
    train = read_events(tmp_path / "train")
    steps = [3, 6]                                     # 8 batches in all, every third
    assert train["batch_loss"] == [(s, float(np.float32(seen[s - 1]["loss"]))) for s in steps]
    assert train["batch_accuracy"] == [(s, float(np.float32(seen[s - 1]["accuracy"]))) for s in steps]
    assert [s for s, _ in train["epoch_loss"]] == [0, 1]
    assert not (tmp_path / "validation").exists()      # nothing validated, no writer made


def test_evaluate_logs_against_the_iteration_count(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    result = model.evaluate(x, y, verbose=0, return_dict=True, callbacks=[keras.callbacks.TensorBoard(tmp_path)])
    valid = read_events(tmp_path / "validation")
    assert valid["evaluation_loss_vs_iterations"] == [(5, float(np.float32(result["loss"])))]


def test_runs_logged_to_one_folder_within_a_second_keep_all_their_events(tmp_path):
    x, y = _data()
    model = _model()
    board = keras.callbacks.TensorBoard(tmp_path)
    first = model.fit(x, y, epochs=1, batch_size=40, verbose=0, callbacks=[board])
    second = model.fit(x, y, epochs=1, batch_size=40, verbose=0, callbacks=[board])
    assert len(list((tmp_path / "train").iterdir())) == 2
    assert sorted(read_events(tmp_path / "train")["epoch_loss"]) == \
        sorted([(0, _as_logged(first.history["loss"])[0]), (0, _as_logged(second.history["loss"])[0])])


def test_what_fastnn_cannot_log_is_refused_by_name():
    for kwargs in ({"histogram_freq": 1}, {"write_images": True}, {"profile_batch": 2}, {"embeddings_freq": 1}):
        with pytest.raises(ValueError, match=f"{next(iter(kwargs))}.*not supported"):
            keras.callbacks.TensorBoard(**kwargs)
    with pytest.raises(ValueError, match="update_freq"):
        keras.callbacks.TensorBoard(update_freq=0)
    keras.callbacks.TensorBoard(write_graph=True, update_freq="batch")      # accepted (the graph is not written)


def test_without_tensorboardx_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)        # import tensorboardX now raises ImportError
    with pytest.raises(ImportError, match=r"fastnn\[tensorboard\]"):
        keras.callbacks.TensorBoard()
