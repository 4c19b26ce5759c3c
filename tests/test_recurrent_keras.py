"""Recurrent layers against Keras 3's own numbers (``keras_reference/make_recurrent_reference.py``,
Keras 3.15.1 / TensorFlow 2.21 CPU).

Training (``recurrent_sgd_reference``, ``make_recurrent_sgd_reference.py``): Embedding + SimpleRNN /
LSTM / GRU / Bidirectional(LSTM) / stacked LSTM / masked LSTM / masked GRU + GlobalAveragePooling1D /
masked Bidirectional(LSTM), then Dense(1, sigmoid), SGD(0.1, momentum 0.9), binary cross-entropy, 3
epochs of batch 16 with shuffle=False from Keras's initial weights: the final weights, the epoch
losses and the predictions must agree to float32 round-off accumulated over 12 steps. (With RMSprop,
Adam or Adagrad Keras's TensorFlow backend squares an Embedding's gradient per token occurrence, not
per row; that script's ``rmsprop_one_step`` shows it. fastnn uses the row's gradient, as Keras's JAX
and torch backends do, so those optimizers are compared on the other layers only through SGD.) Layers: 56 single-layer cases (inference outputs) with the
input and weight gradients of ``sum(y * r)`` for Keras's random ``r``. Files: Keras's ``.keras``
archives of three trained models load and predict as Keras did.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn.models.training import loss_and_gradients

L = keras.layers
HERE = Path(__file__).with_name("keras_reference")
REF = np.load(HERE / "recurrent_sgd_reference.npz")
INFO = json.loads((HERE / "recurrent_sgd_reference.json").read_text())
KERAS_FILES = np.load(HERE / "recurrent_reference.npz")
KERAS_FILES_INFO = json.loads((HERE / "recurrent_reference.json").read_text())
LAYERS = np.load(HERE / "rnn_layers_reference.npz")
LAYERS_INFO = json.loads((HERE / "rnn_layers_reference.json").read_text())

BODIES = {
    "simple_rnn": lambda: [L.SimpleRNN(8)],
    "lstm": lambda: [L.LSTM(8)],
    "gru": lambda: [L.GRU(8)],
    "bidirectional_lstm": lambda: [L.Bidirectional(L.LSTM(8))],
    "stacked_lstm": lambda: [L.LSTM(8, return_sequences=True), L.LSTM(8)],
    "masked_lstm": lambda: [L.LSTM(8)],
    "masked_gru_pool": lambda: [L.GRU(8, return_sequences=True), L.GlobalAveragePooling1D()],
    "masked_bidirectional_lstm": lambda: [L.Bidirectional(L.LSTM(8))],
}


def _model(name):
    model = keras.Sequential([L.Input(shape=(12,)), L.Embedding(50, 8, mask_zero=name.startswith("masked")),
                              *BODIES[name](), L.Dense(1, activation="sigmoid")], name=name)
    n = len(INFO[name]["weights_init"])
    model.set_weights([REF[f"{name}/init/{i}"] for i in range(n)])
    return model


@pytest.mark.parametrize("name", sorted(BODIES))
def test_training_matches_keras(name):
    x, y = REF["data/x"], REF["data/y"]
    model = _model(name)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss="binary_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x[:64], y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                     validation_data=(x[64:], y[64:]))
    ref_hist = INFO[name]["history"]
    np.testing.assert_allclose(hist.history["loss"], ref_hist["loss"], rtol=1e-5)
    np.testing.assert_allclose(hist.history["val_loss"], ref_hist["val_loss"], rtol=1e-5)
    assert hist.history["accuracy"] == pytest.approx(ref_hist["accuracy"])
    for i, w in enumerate(model.get_weights()):
        ref = REF[f"{name}/final/{i}"]
        assert w.shape == ref.shape
        rel = np.linalg.norm(w - ref) / np.linalg.norm(ref)
        assert rel < 1e-5, f"weight {i} ({INFO[name]['weights_final'][i]['path']}): relative error {rel:.2e}"
    np.testing.assert_allclose(model.predict(x[64:], verbose=0), REF[f"{name}/predict_valid"], atol=2e-6)


def test_layer_names_and_parameter_counts_match_keras():
    for name in KERAS_FILES_INFO:
        if name not in BODIES:
            continue
        keras.backend.clear_session()       # as the reference script built each model: names from zero
        model = _model(name)
        assert [layer.name for layer in model.layers] == KERAS_FILES_INFO[name]["layer_names"]
        assert model.count_params() == sum(int(np.prod(w["shape"])) for w in INFO[name]["weights_init"])


@pytest.mark.parametrize("name", ["lstm", "gru", "bidirectional_lstm"])
def test_keras_files_load_and_predict_as_keras(name, tmp_path):
    model = keras.models.load_model(HERE / "models" / f"rnn_{name}.keras")
    x = KERAS_FILES["data/x"][64:]
    np.testing.assert_allclose(model.predict(x, verbose=0), KERAS_FILES[f"{name}/predict_valid"], atol=2e-6)
    # and back: what fastnn writes, fastnn (and Keras's layout) reads
    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def _weights_layout(path):
    """Every group and dataset of a .keras archive's weights below layers/: path -> (shape, attributes)."""
    import io
    import zipfile
    import h5py
    out = {}
    with h5py.File(io.BytesIO(zipfile.ZipFile(path).read("model.weights.h5")), "r") as h5:
        h5["layers"].visititems(lambda name, obj: out.__setitem__(
            name, (getattr(obj, "shape", None), {k: str(v) for k, v in obj.attrs.items()})))
    return out


def _without_object_ids(obj):
    """Keras marks objects it shares between configs with a per-process ``shared_object_id``."""
    if isinstance(obj, dict):
        return {k: _without_object_ids(v) for k, v in obj.items() if k != "shared_object_id"}
    if isinstance(obj, list):
        return [_without_object_ids(v) for v in obj]
    return obj


def _layer_configs(path):
    import zipfile
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    return [(layer["class_name"], _without_object_ids(layer["config"])) for layer in config["config"]["layers"]]


@pytest.mark.parametrize("name", ["lstm", "gru", "bidirectional_lstm"])
def test_files_fastnn_writes_have_keras_layout_and_configs(name, tmp_path):
    """What Keras needs to load the file: the same weight groups, shapes and owner names, and
    the same layer configs (Keras's own file as the model)."""
    keras_file = HERE / "models" / f"rnn_{name}.keras"
    path = tmp_path / f"{name}.keras"
    keras.models.load_model(keras_file).save(path)
    assert _weights_layout(path) == _weights_layout(keras_file)
    assert _layer_configs(path) == _layer_configs(keras_file)


def _layer_cases():
    return sorted({k.split("/")[1] for k in LAYERS.files if k.startswith("layers/")})


def _case_layer(case, config):
    """The layer of one reference case from its stored Keras config."""
    return L.deserialize(config)


# Cases fastnn refuses (a ValueError that says so): several outputs, reset_after=False, recurrent_dropout.
REFUSED = ("_state", "_None", "reset_after_false", "dropout_inference")


def _build_case(case):
    info = LAYERS_INFO["layers"][case]
    x = LAYERS[f"layers/{case}/x"]
    inp = L.Input(shape=x.shape[1:])
    t = inp
    if len(info["model_layers"]) == 3:
        t = L.Embedding(10, 4, mask_zero=True)(t)
    layer = L.deserialize({"module": "keras.layers", "class_name": info["model_layers"][-1],
                           "config": info["config"], "registered_name": None})
    # Flatten drops a sequence's mask (as in Keras), so the loss below sees every step; its
    # output is the same values.
    model = keras.Model(inp, L.Flatten()(layer(t)))
    n = len(info["weights"])
    model.set_weights([LAYERS[f"layers/{case}/w/{i}"] for i in range(n)])
    return model, x, info


@pytest.mark.parametrize("case", [c for c in _layer_cases() if not any(r in c for r in REFUSED)])
def test_layer_outputs_and_weight_gradients_match_keras(case):
    model, x, info = _build_case(case)
    y = model.predict(x, verbose=0)
    np.testing.assert_allclose(y, LAYERS[f"layers/{case}/y/0"].reshape(len(x), -1), atol=2e-6, rtol=1e-5)
    if not info["dw_for"]:
        return
    # The mse loss mean((y - t)^2) has d/dy = 2 (y - t) / y.size: with t = y - r * y.size / 2 the
    # back-propagated gradients are those of sum(y * r), which Keras recorded.
    r = LAYERS[f"layers/{case}/r/0"].astype(np.float64).reshape(y.shape)
    target = (y - r * y.size / 2).astype(np.float32)
    model.compile(loss="mse", optimizer="sgd")
    _, grads = loss_and_gradients(model, x, target)
    paths = [w["path"] for w in info["weights"]]
    for i, path in enumerate(info["dw_for"]):
        var = model.weights[paths.index(path)]
        lo = (var.value.__array_interface__["data"][0] - model._params.__array_interface__["data"][0]) // 4
        got = grads[lo:lo + var.size].reshape(var.shape)
        ref = LAYERS[f"layers/{case}/dw/{i}"]
        np.testing.assert_allclose(got, ref, atol=3e-6 * max(1.0, np.abs(ref).max()), rtol=1e-4,
                                   err_msg=f"{case}: gradient of {path}")


@pytest.mark.parametrize("case", [c for c in _layer_cases() if any(r in c for r in REFUSED)])
def test_unsupported_layer_options_are_refused_clearly(case):
    with pytest.raises(ValueError, match="not supported"):
        _build_case(case)
