"""Writes recurrent_mask_reference.{npz,json} and models/rnn_{masked,explicit_mask}_*.keras: functional
models whose recurrent layers read a mask, as Keras 3 saves them (issue 18, the masked files).

Run with a Python that has Keras 3 (TensorFlow backend) installed; the committed
files were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_recurrent_mask_reference.py

In a functional model Keras 3 computes an ``Embedding(mask_zero=True)``'s mask with an
operation of its own, ``keras.ops.not_equal(ids, 0)``, and passes the result to the
next layer's call as ``mask=`` (config.json: a ``NotEqual`` entry among the layers,
module ``keras.src.ops.numpy``, one inbound node ``args [ids, 0]``; the recurrent
layer's node ``kwargs {"mask": <not_equal tensor>}``). Models (token ids in, float32
``Input((12,))`` / ``Input((6,))``), each saved as ``models/rnn_<name>.keras``:

- ``masked_encoder_decoder_lstm``: Embedding(50, 8, mask_zero=True) + LSTM(8,
  return_state=True) -> [h, c] start LSTM(8) on the decoder's token ids
  (Embedding(50, 8, mask_zero=True)), then Dense(1, sigmoid). The decoder's call has
  initial_state=, so Keras passes it no mask (every step runs) and records none;
- ``masked_gru``: Embedding(50, 8, mask_zero=True) + GRU(8) + Dense(1, sigmoid);
- ``masked_bidirectional_lstm``: Embedding(50, 8, mask_zero=True) +
  Bidirectional(LSTM(8)) + Dense(1, sigmoid);
- ``masked_gru_pool``: Embedding(50, 8, mask_zero=True) + GRU(8, return_sequences=True)
  + GlobalAveragePooling1D (reads the mask too) + Dense(1, sigmoid);
- ``explicit_mask_lstm``: Embedding(50, 8) (no mask_zero) and
  ``LSTM(8)(emb, mask=keras.ops.not_equal(ids, 0))``, then Dense(1, sigmoid): a mask
  written by the user, the same maths as mask_zero;
- ``explicit_mask_decoder_lstm``: the encoder-decoder with the decoder's mask given:
  ``LSTM(8)(Embedding(50, 8)(dec), initial_state=[h, c], mask=keras.ops.not_equal(dec, 0))``
  (a call with initial_state= reads a mask= it is given); the fully padded decoder row
  outputs zeros, not the initial state;
- ``explicit_mask_decoder_gru_sequences``: the same with GRUs, the decoder returning
  sequences (Flatten, Dense(1)): its leading masked steps output zeros.

Weights from NumPy (``init_weights`` of make_recurrent_reference.py; no training).
``data/x`` (16, 12): rows 64:80 of recurrent_reference.npz's ids (pre-padded), rows
8..15 moved to post-padding, row 5 all padding, row 2 with a 0 inside; ``data/dec``
(16, 6): decoder ids, pre- and post-padded, row 9 all padding. ``<name>/predict``:
``model.predict`` on them; ``<name>/w/<i>``: model.weights. json ``<name>``:
``config`` (the file's config.json), ``layer_names``, ``weights`` (paths, shapes),
``inputs``, ``reload_max_abs_diff`` (Keras loading its own file). json ``facts``: Keras's
masks in a graph (``mask_facts``).
"""
import json
import zipfile

import numpy as np

from _common import HERE, keras_module, weight_records, write
from make_recurrent_reference import init_weights

keras, tf = keras_module()
L = keras.layers
MODELS = HERE / "models"
VOCAB, EMB, UNITS, T_DEC = 50, 8, 8, 6


def masked_encoder_decoder_lstm():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC,))
    _, h, c = L.LSTM(UNITS, return_state=True)(L.Embedding(VOCAB, EMB, mask_zero=True)(enc_in))
    out = L.LSTM(UNITS)(L.Embedding(VOCAB, EMB, mask_zero=True)(dec_in), initial_state=[h, c])
    return keras.Model([enc_in, dec_in], L.Dense(1, activation="sigmoid")(out), name="masked_encoder_decoder_lstm")


def _one_input(name, body):
    inp = L.Input(shape=(12,))
    return keras.Model(inp, L.Dense(1, activation="sigmoid")(body(inp)), name=name)


def masked_gru():
    return _one_input("masked_gru", lambda ids: L.GRU(UNITS)(L.Embedding(VOCAB, EMB, mask_zero=True)(ids)))


def masked_bidirectional_lstm():
    return _one_input("masked_bidirectional_lstm",
                      lambda ids: L.Bidirectional(L.LSTM(UNITS))(L.Embedding(VOCAB, EMB, mask_zero=True)(ids)))


def masked_gru_pool():
    return _one_input("masked_gru_pool", lambda ids: L.GlobalAveragePooling1D()(
        L.GRU(UNITS, return_sequences=True)(L.Embedding(VOCAB, EMB, mask_zero=True)(ids))))


def explicit_mask_lstm():
    return _one_input("explicit_mask_lstm",
                      lambda ids: L.LSTM(UNITS)(L.Embedding(VOCAB, EMB)(ids), mask=keras.ops.not_equal(ids, 0)))


def explicit_mask_decoder_lstm():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC,))
    _, h, c = L.LSTM(UNITS, return_state=True)(L.Embedding(VOCAB, EMB, mask_zero=True)(enc_in))
    out = L.LSTM(UNITS)(L.Embedding(VOCAB, EMB)(dec_in), initial_state=[h, c], mask=keras.ops.not_equal(dec_in, 0))
    return keras.Model([enc_in, dec_in], L.Dense(1, activation="sigmoid")(out), name="explicit_mask_decoder_lstm")


def explicit_mask_decoder_gru_sequences():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC,))
    _, h = L.GRU(UNITS, return_state=True)(L.Embedding(VOCAB, EMB, mask_zero=True)(enc_in))
    seq = L.GRU(UNITS, return_sequences=True)(L.Embedding(VOCAB, EMB)(dec_in), initial_state=[h],
                                              mask=keras.ops.not_equal(dec_in, 0))
    return keras.Model([enc_in, dec_in], L.Dense(1)(L.Flatten()(seq)), name="explicit_mask_decoder_gru_sequences")


BUILDERS = {f.__name__: f for f in (masked_encoder_decoder_lstm, masked_gru, masked_bidirectional_lstm,
                                    masked_gru_pool, explicit_mask_lstm,
                                    explicit_mask_decoder_lstm, explicit_mask_decoder_gru_sequences)}


def make_data():
    base = np.load(HERE / "recurrent_reference.npz")
    x = base["data/x"][64:80].astype(np.float32)
    for r in range(8, 16):                      # post-padding: the ids first, then the zeros
        ids = x[r][x[r] != 0]
        x[r] = np.concatenate([ids, np.zeros(12 - len(ids), np.float32)])
    x[5] = 0                                    # a row with every step masked
    x[2, 8] = 0                                 # a masked step between real ones
    rng = np.random.default_rng(1821)
    dec = rng.integers(1, VOCAB, (16, T_DEC)).astype(np.float32)
    for r, n_pad in enumerate(rng.integers(0, T_DEC, 16)):
        if r % 2:
            dec[r, T_DEC - n_pad:] = 0
        else:
            dec[r, :n_pad] = 0
    dec[9] = 0
    return x, dec


def mask_facts():
    """What carries a mask in Keras's graph: the output of a call with initial_state= (which reads no
    mask) keeps its input's mask when it returns sequences; the Embedding's mask is a NotEqual tensor."""
    keras.backend.clear_session()
    ids = L.Input(shape=(T_DEC,))
    emb = L.Embedding(VOCAB, EMB, mask_zero=True)(ids)
    states = [L.Input(shape=(UNITS,)), L.Input(shape=(UNITS,))]
    seq = L.LSTM(UNITS, return_sequences=True)(emb, initial_state=states)
    last = L.LSTM(UNITS)(emb, initial_state=states)
    mask = emb._keras_mask
    return {"embedding_mask": {"dtype": str(mask.dtype), "shape": list(mask.shape),
                               "made_by": type(mask._keras_history[0]).__name__},
            "initial_state_sequences_output_mask_is_embedding_mask": getattr(seq, "_keras_mask", None) is mask,
            "initial_state_last_output_mask": repr(getattr(last, "_keras_mask", None))}


def main():
    MODELS.mkdir(exist_ok=True)
    x, dec = make_data()
    arrays, info = {"data/x": x, "data/dec": dec}, {}
    rng = np.random.default_rng(1822)
    for name, build in BUILDERS.items():
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = build()
        init_weights(model, rng)
        inputs = [x, dec] if len(model.inputs) == 2 else x
        d = info[name] = {"inputs": ["data/x", "data/dec"] if len(model.inputs) == 2 else "data/x"}
        d["weights"] = weight_records(model, f"{name}/w", arrays)
        d["layer_names"] = [layer.name for layer in model.layers]
        arrays[f"{name}/predict"] = pred = np.asarray(model.predict(inputs, verbose=0))
        path = MODELS / f"rnn_{name}.keras"
        model.save(path)
        d["config"] = json.loads(zipfile.ZipFile(path).read("config.json"))
        back = keras.saving.load_model(path)
        d["reload_max_abs_diff"] = float(np.nanmax(np.abs(np.asarray(back.predict(inputs, verbose=0)) - pred)))
        d["keras_file"] = f"models/rnn_{name}.keras (predictions: {name}/predict)"
    info["facts"] = mask_facts()
    write("recurrent_mask_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
