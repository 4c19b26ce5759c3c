"""Recurrent layers against Keras 3's own numbers (``keras_reference/make_recurrent_reference.py``,
Keras 3.15.1 / TensorFlow 2.21 CPU).

Training (``recurrent_sgd_reference``, ``make_recurrent_sgd_reference.py``): Embedding + SimpleRNN /
LSTM / GRU / Bidirectional(LSTM) / stacked LSTM / masked LSTM / masked GRU + GlobalAveragePooling1D /
masked Bidirectional(LSTM), then Dense(1, sigmoid), SGD(0.1, momentum 0.9), binary cross-entropy, 3
epochs of batch 16 with shuffle=False from Keras's initial weights: the final weights, the epoch
losses and the predictions must agree to float32 round-off accumulated over 12 steps. (With RMSprop,
Adam or Adagrad Keras's TensorFlow backend squares an Embedding's gradient per token occurrence, not
per row; that script's ``rmsprop_one_step`` shows it. fastnn uses the row's gradient, as Keras's JAX
and torch backends do, so those optimizers are compared on the other layers only through SGD.)
Layers: 56 single-layer cases (inference outputs, return_state and merge_mode=None ones included)
with the weight gradients of ``sum_j sum(y_j * r_j)`` for Keras's random ``r``. Files: Keras's
``.keras`` archives of three trained models load and predict as Keras did.

The options of ``make_recurrent_state_reference.py`` (return_state, initial_state, GRU
reset_after=False): encoder-decoder, Bidirectional-states and GRU models trained the same way, their
files both ways, and 11 layers started from given states with the states' gradients.

Masks in functional models (``make_recurrent_mask_reference.py``): Keras's files of a masked
encoder-decoder, masked GRU, Bidirectional(LSTM) and pooled GRU models and of masks written as
``layer(x, mask=keras.ops.not_equal(ids, 0))`` load and predict as Keras did on padded ids (a fully
padded row too), and fastnn writes Keras's config for them; a given mask equals mask_zero.
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
    # output is the same values. return_state and merge_mode=None give several outputs.
    ys = layer(t)
    model = keras.Model(inp, [L.Flatten()(y) for y in (ys if isinstance(ys, list) else [ys])])
    n = len(info["weights"])
    model.set_weights([LAYERS[f"layers/{case}/w/{i}"] for i in range(n)])
    return model, x, info


@pytest.mark.parametrize("case", _layer_cases())
def test_layer_outputs_and_weight_gradients_match_keras(case):
    model, x, info = _build_case(case)
    ys = model.predict(x, verbose=0)
    ys = ys if isinstance(ys, list) else [ys]
    assert len(ys) == len(info["output_shapes"])
    for j, y in enumerate(ys):
        np.testing.assert_allclose(y, LAYERS[f"layers/{case}/y/{j}"].reshape(len(x), -1), atol=2e-6, rtol=1e-5)
    if not info["dw_for"]:
        return
    # Each output's mse loss mean((y - t)^2) has d/dy = 2 (y - t) / y.size: with t = y - r * y.size / 2 the
    # back-propagated gradients are those of sum_j sum(y_j * r_j), which Keras recorded.
    targets = []
    for j, y in enumerate(ys):
        r = LAYERS[f"layers/{case}/r/{j}"].astype(np.float64).reshape(y.shape)
        targets.append((y - r * y.size / 2).astype(np.float32))
    model.compile(loss="mse", optimizer="sgd")
    _, grads = loss_and_gradients(model, x, targets if len(targets) > 1 else targets[0])
    paths = [w["path"] for w in info["weights"]]
    for i, path in enumerate(info["dw_for"]):
        var = model.weights[paths.index(path)]
        lo = (var.value.__array_interface__["data"][0] - model._params.__array_interface__["data"][0]) // 4
        got = grads[lo:lo + var.size].reshape(var.shape)
        ref = LAYERS[f"layers/{case}/dw/{i}"]
        np.testing.assert_allclose(got, ref, atol=3e-6 * max(1.0, np.abs(ref).max()), rtol=1e-4,
                                   err_msg=f"{case}: gradient of {path}")



# -- return_state, initial_state, GRU(reset_after=False): make_recurrent_state_reference.py ----------
STATE = np.load(HERE / "recurrent_state_reference.npz")
STATE_INFO = json.loads((HERE / "recurrent_state_reference.json").read_text())
T_DEC = 6


def _encoder_decoder_lstm():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC, 3))
    _, h, c = L.LSTM(8, return_state=True)(L.Embedding(50, 8)(enc_in))
    out = L.LSTM(8, return_sequences=True)(dec_in, initial_state=[h, c])
    return keras.Model([enc_in, dec_in], L.Dense(1)(out))


def _encoder_decoder_gru_masked():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC,))
    _, h = L.GRU(8, reset_after=False, return_state=True)(L.Embedding(50, 8, mask_zero=True)(enc_in))
    out = L.GRU(8, reset_after=False)(L.Embedding(50, 8, mask_zero=True)(dec_in), initial_state=[h])
    return keras.Model([enc_in, dec_in], L.Dense(1, activation="sigmoid")(out))


def _bidirectional_states():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC, 3))
    _, fh, fc, bh, bc = L.Bidirectional(L.LSTM(8, return_state=True))(L.Embedding(50, 8)(enc_in))
    out = L.LSTM(16)(dec_in, initial_state=[L.Concatenate()([fh, bh]), L.Concatenate()([fc, bc])])
    return keras.Model([enc_in, dec_in], L.Dense(1, activation="sigmoid")(out))


def _gru_reset_before():
    return keras.Sequential([L.Input(shape=(12,)), L.Embedding(50, 8), L.GRU(8, reset_after=False),
                             L.Dense(1, activation="sigmoid")])


STATE_MODELS = {"encoder_decoder_lstm": _encoder_decoder_lstm,
                "encoder_decoder_gru_masked": _encoder_decoder_gru_masked,
                "bidirectional_states": _bidirectional_states, "gru_reset_before": _gru_reset_before}


def _state_data(name, lo, hi):
    info = STATE_INFO[name]
    names = info["inputs"] if isinstance(info["inputs"], list) else [info["inputs"]]
    x = [STATE[n][lo:hi] for n in names]
    return (x if len(x) > 1 else x[0]), STATE[info["targets"]][lo:hi]


@pytest.mark.parametrize("name", sorted(STATE_MODELS))
def test_state_options_train_as_keras(name):
    """3 epochs of SGD with momentum from Keras's initial weights: the encoder trains only through
    the states it hands the decoder, so the final weights check that gradient path."""
    info = STATE_INFO[name]
    model = STATE_MODELS[name]()
    assert [w.shape for w in model.weights] == [tuple(w["shape"]) for w in info["weights_init"]]
    model.set_weights([STATE[f"{name}/init/{i}"] for i in range(len(info["weights_init"]))])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  loss=info["compile"].split('loss="')[1].rstrip('"'))
    x, y = _state_data(name, 0, 64)
    hist = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, validation_data=_state_data(name, 64, 96))
    np.testing.assert_allclose(hist.history["loss"], info["history"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(hist.history["val_loss"], info["history"]["val_loss"], rtol=1e-5)
    for i, w in enumerate(model.get_weights()):
        ref = STATE[f"{name}/final/{i}"]
        rel = np.linalg.norm(w - ref) / np.linalg.norm(ref)
        assert rel < 1e-5, f"weight {i} ({info['weights_final'][i]['path']}): relative error {rel:.2e}"
    np.testing.assert_allclose(model.predict(_state_data(name, 64, 96)[0], verbose=0), STATE[f"{name}/predict_valid"],
                               atol=2e-6)


@pytest.mark.parametrize("name", ["encoder_decoder_lstm", "gru_reset_before"])
def test_state_option_files_load_both_ways(name, tmp_path):
    """Keras's files (initial_state in a functional config, GRU reset_after=False) load and predict
    as Keras did; what fastnn writes has Keras's weight layout and layer configs, and loads back.
    (The masked encoder-decoder's file, where Keras computes the encoder's mask with a NotEqual
    operation, is ``masked_encoder_decoder_lstm`` of ``test_masked_keras_files_load_and_predict_as_keras``.)"""
    keras_file = HERE / "models" / f"rnn_{name}.keras"
    model = keras.models.load_model(keras_file)
    x, _ = _state_data(name, 64, 96)
    np.testing.assert_allclose(model.predict(x, verbose=0), STATE[f"{name}/predict_valid"], atol=2e-6)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    assert _weights_layout(path) == _weights_layout(keras_file)
    assert _layer_configs(path) == _layer_configs(keras_file)
    np.testing.assert_array_equal(keras.models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))


def _state_case_model(case):
    """The reference case's model; each initial state passes through a Dense of identity kernel
    (the same values), whose kernel gradient s0^T @ d loss / d s0 then shows the states' gradient."""
    info = STATE_INFO["layers"][case]
    inp = L.Input(shape=(5,))
    state_ins = [L.Input(shape=(3,)) for _ in range(info["n_states"])]
    through = [L.Dense(3, use_bias=False) for _ in state_ins]
    layer = L.deserialize({"module": "keras.layers", "class_name": info["class_name"], "config": info["config"],
                           "registered_name": None})
    emb = L.Embedding(10, 4, mask_zero=True)
    ys = layer(emb(inp), initial_state=[d(s) for d, s in zip(through, state_ins)])
    model = keras.Model([inp, *state_ins], [L.Flatten()(y) for y in (ys if isinstance(ys, list) else [ys])])
    w = [STATE[f"layers/{case}/w/{i}"] for i in range(len(info["weights"]))]
    assert info["weights"][0]["path"].startswith("embedding")
    emb.set_weights(w[:1])
    layer.set_weights(w[1:])
    for d in through:
        d.set_weights([np.eye(3, dtype=np.float32)])
    return model, info, layer, through


@pytest.mark.parametrize("case", sorted(STATE_INFO["layers"]))
def test_initial_state_cases_match_keras(case):
    """Layers started from given states on the ids of a masked Embedding (one row fully masked):
    Keras 3 passes no mask to a call with initial_state, so every step runs. Outputs, final
    states, and the gradients of the weights and of the initial states."""
    model, info, layer, through = _state_case_model(case)
    p = f"layers/{case}"
    states = [STATE[f"{p}/state/{k}"] for k in range(info["n_states"])]
    x = [STATE[f"{p}/x"].astype(np.float32), *states]
    ys = model.predict(x, verbose=0)
    ys = ys if isinstance(ys, list) else [ys]
    for j, y in enumerate(ys):
        np.testing.assert_allclose(y, STATE[f"{p}/y/{j}"].reshape(len(y), -1), atol=2e-6, rtol=1e-5)
    targets = [(y - STATE[f"{p}/r/{j}"].astype(np.float64).reshape(y.shape) * y.size / 2).astype(np.float32)
               for j, y in enumerate(ys)]
    model.compile(loss="mse", optimizer="sgd")
    _, grads = loss_and_gradients(model, x, targets if len(targets) > 1 else targets[0])

    def grad_of(var):
        lo = (var.value.__array_interface__["data"][0] - model._params.__array_interface__["data"][0]) // 4
        return grads[lo:lo + var.size].reshape(var.shape)

    assert info["dw_for"][0].startswith("embedding")     # then the layer's, in its weights' order
    refs = [STATE[f"{p}/dw/{i}"] for i in range(1, len(info["dw_for"]))]
    refs += [states[k].T.astype(np.float64) @ STATE[f"{p}/dstate/{k}"] for k in range(len(states))]
    for i, (var, ref) in enumerate(zip(layer.weights + [d.kernel for d in through], refs)):
        np.testing.assert_allclose(grad_of(var), ref, atol=3e-6 * max(1.0, np.abs(ref).max()), rtol=1e-4,
                                   err_msg=f"{case}: gradient {i}")


# -- masks in functional models, as Keras saves them: make_recurrent_mask_reference.py ------------------
MASK = np.load(HERE / "recurrent_mask_reference.npz")
MASK_INFO = json.loads((HERE / "recurrent_mask_reference.json").read_text())


def _masked_encoder_decoder_lstm(explicit=False):
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC,))
    _, h, c = L.LSTM(8, return_state=True)(L.Embedding(50, 8, mask_zero=True)(enc_in))
    if explicit:
        out = L.LSTM(8)(L.Embedding(50, 8)(dec_in), initial_state=[h, c], mask=keras.ops.not_equal(dec_in, 0))
    else:
        out = L.LSTM(8)(L.Embedding(50, 8, mask_zero=True)(dec_in), initial_state=[h, c])
    return keras.Model([enc_in, dec_in], L.Dense(1, activation="sigmoid")(out),
                       name="explicit_mask_decoder_lstm" if explicit else "masked_encoder_decoder_lstm")


def _explicit_mask_decoder_gru_sequences():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC,))
    _, h = L.GRU(8, return_state=True)(L.Embedding(50, 8, mask_zero=True)(enc_in))
    seq = L.GRU(8, return_sequences=True)(L.Embedding(50, 8)(dec_in), initial_state=[h],
                                          mask=keras.ops.not_equal(dec_in, 0))
    return keras.Model([enc_in, dec_in], L.Dense(1)(L.Flatten()(seq)), name="explicit_mask_decoder_gru_sequences")


def _masked_one_input(name, body):
    ids = L.Input(shape=(12,))
    return keras.Model(ids, L.Dense(1, activation="sigmoid")(body(ids)), name=name)


MASK_MODELS = {
    "masked_encoder_decoder_lstm": _masked_encoder_decoder_lstm,
    "masked_gru": lambda: _masked_one_input(
        "masked_gru", lambda ids: L.GRU(8)(L.Embedding(50, 8, mask_zero=True)(ids))),
    "masked_bidirectional_lstm": lambda: _masked_one_input(
        "masked_bidirectional_lstm", lambda ids: L.Bidirectional(L.LSTM(8))(L.Embedding(50, 8, mask_zero=True)(ids))),
    "masked_gru_pool": lambda: _masked_one_input("masked_gru_pool", lambda ids: L.GlobalAveragePooling1D()(
        L.GRU(8, return_sequences=True)(L.Embedding(50, 8, mask_zero=True)(ids)))),
    "explicit_mask_lstm": lambda: _masked_one_input(
        "explicit_mask_lstm", lambda ids: L.LSTM(8)(L.Embedding(50, 8)(ids), mask=keras.ops.not_equal(ids, 0))),
    "explicit_mask_decoder_lstm": lambda: _masked_encoder_decoder_lstm(explicit=True),
    "explicit_mask_decoder_gru_sequences": lambda: _explicit_mask_decoder_gru_sequences(),
}


def _mask_inputs(name):
    names = MASK_INFO[name]["inputs"]
    return [MASK[n] for n in names] if isinstance(names, list) else MASK[names]


def _functional_config(path):
    """The model config of a .keras file as fastnn compares it with Keras's: without Keras's
    per-process ``shared_object_id``s and the ``training: false`` Keras writes on a recurrent call
    that did not fix it (fastnn drops it on loading: Keras ignores it in fit and predict)."""
    import zipfile
    config = _without_object_ids(json.loads(zipfile.ZipFile(path).read("config.json"))["config"])
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            if node["kwargs"].get("training") is False:
                del node["kwargs"]["training"]
    return config


def _built_masked_model(name):
    keras.backend.clear_session()       # as the reference script built each model: names from zero
    model = MASK_MODELS[name]()
    model.set_weights([MASK[f"{name}/w/{i}"] for i in range(len(MASK_INFO[name]["weights"]))])
    return model


@pytest.mark.parametrize("name", sorted(MASK_MODELS))
def test_masked_keras_files_load_and_predict_as_keras(name, tmp_path):
    """Keras's file (its mask a NotEqual operation whose output is the recurrent or pooling layer's
    mask=) predicts what Keras predicted on padded ids, a fully padded row included; what fastnn
    writes back has Keras's config, node for node, and weight layout, and loads again."""
    keras_file = HERE / "models" / f"rnn_{name}.keras"
    model = keras.models.load_model(keras_file)
    x = _mask_inputs(name)
    np.testing.assert_allclose(model.predict(x, verbose=0), MASK[f"{name}/predict"], atol=2e-6)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    assert _functional_config(path) == _functional_config(keras_file)
    assert _weights_layout(path) == _weights_layout(keras_file)
    np.testing.assert_array_equal(keras.models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("name", sorted(MASK_MODELS))
def test_masked_models_built_in_fastnn_save_what_keras_saves(name, tmp_path):
    """The same models written in fastnn (Keras's weights set in) predict as Keras did, and their
    files hold Keras's config: the NotEqual operation, its place among the layers and the mask=
    argument of the layer that reads it."""
    model = _built_masked_model(name)
    assert [layer.name for layer in model.layers] == MASK_INFO[name]["layer_names"]
    x = _mask_inputs(name)
    np.testing.assert_allclose(model.predict(x, verbose=0), MASK[f"{name}/predict"], atol=2e-6)
    model.save(tmp_path / "m.keras")
    assert _functional_config(tmp_path / "m.keras") == _functional_config(HERE / "models" / f"rnn_{name}.keras")


def _twin_models(body):
    """body(embedded, ids, mask_zero) -> output: the same weights with the mask from
    Embedding(mask_zero=True), then with ``mask=keras.ops.not_equal(ids, 0)`` written out."""
    models = []
    for mask_zero in (True, False):
        keras.utils.set_random_seed(3)
        ids = L.Input(shape=(12,))
        out = body(L.Embedding(50, 4, mask_zero=mask_zero)(ids), ids, mask_zero)
        model = keras.Model(ids, L.Dense(1, activation="sigmoid")(out))
        model.compile(loss="binary_crossentropy", optimizer="sgd")
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    return models


@pytest.mark.parametrize("case", ["lstm", "bidirectional_gru", "gru_sequences_pool"])
def test_a_mask_given_to_a_layer_equals_mask_zero(case):
    """``LSTM(4)(emb, mask=ops.not_equal(ids, 0))`` is the mask_zero model: the same predictions and
    the same gradients of every weight (on padded ids, a fully padded row too but for the pooled case)."""
    def given(mask_zero, ids):
        return {} if mask_zero else {"mask": keras.ops.not_equal(ids, 0)}
    bodies = {
        "lstm": lambda emb, ids, mz: L.LSTM(4)(emb, **given(mz, ids)),
        "bidirectional_gru": lambda emb, ids, mz: L.Bidirectional(L.GRU(4))(emb, **given(mz, ids)),
        # the GRU's output keeps the mask it was given; the pooling reads it from there
        "gru_sequences_pool": lambda emb, ids, mz: L.GlobalAveragePooling1D()(
            L.GRU(4, return_sequences=True)(emb, **given(mz, ids))),
    }
    implicit, explicit = _twin_models(bodies[case])
    x = MASK["data/x"]
    if case == "gru_sequences_pool":       # a fully padded row's average is 0 / 0 (NaN), as in Keras
        x = np.delete(x, np.flatnonzero((x == 0).all(axis=1)), axis=0)
    y = (np.arange(len(x)) % 2).astype(np.float32)
    np.testing.assert_array_equal(explicit.predict(x, verbose=0), implicit.predict(x, verbose=0))
    np.testing.assert_array_equal(loss_and_gradients(explicit, x, y)[1], loss_and_gradients(implicit, x, y)[1])


def test_a_mask_on_arrays_skips_the_masked_steps():
    """``layer(x, mask=m)`` on arrays: each row's output is the layer's output on the row's
    unmasked steps alone (Keras's masking: a masked step leaves the state as it was); a row with
    every step masked gives the initial state, zeros."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (4, 6, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 0], [0] * 6], dtype=bool)
    layer = L.GRU(5)
    out = layer(x, mask=mask)
    for r in range(3):
        alone = L.GRU(5)
        alone(x[r:r + 1, mask[r]])
        alone.set_weights(layer.get_weights())
        np.testing.assert_allclose(out[r], alone(x[r:r + 1, mask[r]])[0], atol=1e-6)
    np.testing.assert_array_equal(out[3], np.zeros(5, np.float32))


def test_mask_arguments_are_checked():
    ids = L.Input(shape=(12,))
    emb = L.Embedding(50, 4)(ids)
    with pytest.raises(TypeError, match="takes no mask"):
        L.Dense(3)(emb, mask=keras.ops.not_equal(ids, 0))
    with pytest.raises(ValueError, match="one value per timestep"):
        L.LSTM(3)(emb, mask=keras.ops.not_equal(emb, 0))
    with pytest.raises(TypeError, match="symbolic tensor"):
        L.LSTM(3)(emb, mask=np.ones((1, 12), dtype=bool))


def test_operations_fastnn_cannot_save_or_load_are_refused_clearly(tmp_path):
    """A config's keras.ops operation other than NotEqual is refused by name on loading; a model with
    another keras.ops call outside any layer refuses to save, saying what to do instead."""
    import copy
    config = copy.deepcopy(MASK_INFO["masked_gru"]["config"]["config"])
    op = next(layer for layer in config["layers"] if layer["class_name"] == "NotEqual")
    op.update(class_name="Add", registered_name="Add")
    with pytest.raises(ValueError, match="keras.ops operation 'Add'.*does not load"):
        keras.Model.from_config(config)
    ids = L.Input(shape=(12,))
    model = keras.Model(ids, L.Dense(1)(keras.ops.add(ids, 1.0)))
    with pytest.raises(NotImplementedError, match="keras.ops.add called on a model's tensors"):
        model.save(tmp_path / "m.keras")


KERAS_MASK_CHECK = """
import json, sys
import numpy as np
import keras
folder = sys.argv[1]
out = {}
for name in sys.argv[2:]:
    data = np.load(f"{folder}/{name}.npz")
    x = [data["x0"], data["x1"]] if "x1" in data else data["x0"]
    out[name] = np.asarray(keras.saving.load_model(f"{folder}/{name}.keras").predict(x, verbose=0)).tolist()
print(json.dumps(out))
"""


def test_keras_loads_the_masked_files_fastnn_writes(tmp_path):
    """Keras 3 (the side interpreter, when there is one) loads the masked models fastnn saves and
    predicts what fastnn predicts."""
    import os
    import subprocess
    python = os.environ.get("KERAS_PYTHON", "/tmp/kvenv/bin/python")
    if not Path(python).exists():
        pytest.skip(f"no Keras interpreter at {python} (set KERAS_PYTHON to one with keras 3 installed)")
    ours = {}
    for name in sorted(MASK_MODELS):
        model = _built_masked_model(name)
        x = _mask_inputs(name)
        model.save(tmp_path / f"{name}.keras")
        np.savez(tmp_path / f"{name}.npz", **{f"x{i}": a for i, a in enumerate(x if isinstance(x, list) else [x])})
        ours[name] = model.predict(x, verbose=0)
    (tmp_path / "check.py").write_text(KERAS_MASK_CHECK)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run([python, str(tmp_path / "check.py"), str(tmp_path), *sorted(ours)], capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    for name, pred in ours.items():
        np.testing.assert_allclose(np.asarray(theirs[name], np.float32), pred, atol=2e-6, err_msg=name)


def test_an_integer_input_of_token_ids_loads_predicts_and_saves_as_keras_does(tmp_path):
    """A text model whose Input declares int32 token ids (``keras.Input(shape=(12,), dtype="int32")``,
    as the text chapters write it), trained and saved by Keras: fastnn loads it, predicts what
    Keras predicted, and writes the dtype back into its own file; a model built so trains exactly
    as one whose Input is float32 (the ids are held as float32 either way)."""
    import zipfile
    ref = np.load(HERE / "int_input_reference.npz")
    model = keras.models.load_model(HERE / "models" / "int_input_lstm.keras")
    assert model.inputs[0].dtype == "int32"
    predictions = model.predict(ref["ids"], verbose=0)
    np.testing.assert_allclose(predictions, ref["predictions"], atol=2e-6)
    model.save(tmp_path / "again.keras")
    with zipfile.ZipFile(tmp_path / "again.keras") as z:
        layers = json.loads(z.read("config.json"))["config"]["layers"]
    assert [layer["config"]["dtype"] for layer in layers if layer["class_name"] == "InputLayer"] == ["int32"]
    assert np.array_equal(keras.models.load_model(tmp_path / "again.keras").predict(ref["ids"], verbose=0),
                          predictions)

    def trained(dtype):
        keras.utils.set_random_seed(0)
        inp = keras.Input(shape=(12,), dtype=dtype)
        m = keras.Model(inp, L.Dense(1, activation="sigmoid")(L.LSTM(4)(L.Embedding(50, 8, mask_zero=True)(inp))))
        m.compile(optimizer="adam", loss="binary_crossentropy")
        m.fit(ref["ids"], ref["y"], epochs=1, batch_size=16, verbose=0)
        return m.get_weights()
    for a, b in zip(trained(np.int64), trained(None)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float64", "bool", "string", "float16"])
def test_an_input_of_another_dtype_is_refused_by_name(dtype):
    with pytest.raises(ValueError, match=f"dtype '{dtype}' is not supported"):
        keras.Input(shape=(3,), dtype=dtype)
