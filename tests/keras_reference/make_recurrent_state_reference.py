"""Writes recurrent_state_reference.{npz,json} and models/rnn_{encoder_decoder_lstm,
encoder_decoder_gru_masked,gru_reset_before}.keras: the recurrent options of issue 18's second
part (return_state, initial_state, GRU reset_after=False).

Run with a Python that has Keras 3 (TensorFlow backend) installed; the committed
files were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_recurrent_state_reference.py

Training parity (``<model>/...``): the token sequences of recurrent_reference.npz
(64 training, 32 validation, length 12, vocabulary 50) as the encoder's input, a
decoder input drawn here (6 steps of 3 floats in [-1, 1], or 6 token ids with
zero padding), and models

- ``encoder_decoder_lstm``: Embedding(50, 8) + LSTM(8, return_state=True) -> [h, c]
  start LSTM(8, return_sequences=True) on the float decoder input, then Dense(1);
  mse against float targets (n, 6, 1);
- ``encoder_decoder_gru_masked``: Embedding(50, 8, mask_zero=True) +
  GRU(8, reset_after=False, return_state=True) -> h starts GRU(8, reset_after=False)
  on the decoder's masked token ids (Embedding(50, 8, mask_zero=True)), then
  Dense(1, sigmoid); binary cross-entropy;
- ``bidirectional_states``: Embedding(50, 8) + Bidirectional(LSTM(8, return_state=True)),
  the forward and backward h (and c) concatenated start LSTM(16) on the float
  decoder input, then Dense(1, sigmoid); binary cross-entropy;
- ``gru_reset_before``: Sequential Embedding(50, 8) + GRU(8, reset_after=False) +
  Dense(1, sigmoid); binary cross-entropy;

each SGD(learning_rate=0.1, momentum=0.9) (the optimizer the other recurrent
references use: see make_recurrent_sgd_reference.py on Embedding gradients), 3 epochs
of batch 16, shuffle=False, validation_data; initial weights drawn with NumPy
(``init_weights`` of make_recurrent_reference.py) and stored, final weights,
history and validation predictions recorded.

Per-layer cases with initial states (``layers/<case>/...``): a model of inputs
[token ids (3, 5), h0 (and c0) (3, 3)], Embedding(10, 4, mask_zero=True) on the ids
(rows pre- or post-padded, one row fully masked), then the layer called with
``initial_state=[h0, c0]`` (Keras then passes the layer no mask: its ``__call__`` fills
``mask=`` only in calls of one tensor); ``y/<j>`` its outputs (return_state), ``r/<j>`` random,
``dw/<i>`` the gradients of sum_j sum(y_j * r_j) with respect to the trainable
variables (order ``dw_for``), ``dstate/<k>`` with respect to the initial states.
"""
import numpy as np

from _common import HERE, history_dict, keras_module, weight_records, write
from make_recurrent_reference import init_weights

keras, tf = keras_module()
L = keras.layers
MODELS = HERE / "models"
VOCAB, EMB, UNITS, T_DEC = 50, 8, 8, 6


def encoder_decoder_lstm():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC, 3))
    _, h, c = L.LSTM(UNITS, return_state=True)(L.Embedding(VOCAB, EMB)(enc_in))
    out = L.LSTM(UNITS, return_sequences=True)(dec_in, initial_state=[h, c])
    return keras.Model([enc_in, dec_in], L.Dense(1)(out), name="encoder_decoder_lstm")


def encoder_decoder_gru_masked():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC,))
    _, h = L.GRU(UNITS, reset_after=False, return_state=True)(L.Embedding(VOCAB, EMB, mask_zero=True)(enc_in))
    out = L.GRU(UNITS, reset_after=False)(L.Embedding(VOCAB, EMB, mask_zero=True)(dec_in), initial_state=[h])
    return keras.Model([enc_in, dec_in], L.Dense(1, activation="sigmoid")(out), name="encoder_decoder_gru_masked")


def bidirectional_states():
    enc_in, dec_in = L.Input(shape=(12,)), L.Input(shape=(T_DEC, 3))
    _, fh, fc, bh, bc = L.Bidirectional(L.LSTM(UNITS, return_state=True))(L.Embedding(VOCAB, EMB)(enc_in))
    states = [L.Concatenate()([fh, bh]), L.Concatenate()([fc, bc])]
    out = L.LSTM(2 * UNITS)(dec_in, initial_state=states)
    return keras.Model([enc_in, dec_in], L.Dense(1, activation="sigmoid")(out), name="bidirectional_states")


def gru_reset_before():
    return keras.Sequential([L.Input(shape=(12,)), L.Embedding(VOCAB, EMB), L.GRU(UNITS, reset_after=False),
                             L.Dense(1, activation="sigmoid")], name="gru_reset_before")


# name -> (builder, decoder input kind, loss, saved as models/rnn_<name>.keras)
MODELS_BUILT = {
    "encoder_decoder_lstm": (encoder_decoder_lstm, "floats", "mse", True),
    "encoder_decoder_gru_masked": (encoder_decoder_gru_masked, "tokens", "binary_crossentropy", False),
    "bidirectional_states": (bidirectional_states, "floats", "binary_crossentropy", False),
    "gru_reset_before": (gru_reset_before, None, "binary_crossentropy", True),
}


def train_models(arrays, info):
    base = np.load(HERE / "recurrent_reference.npz")
    x, y = base["data/x"], base["data/y"]
    rng = np.random.default_rng(1819)
    dec_floats = rng.uniform(-1, 1, (len(x), T_DEC, 3)).astype(np.float32)
    dec_tokens = rng.integers(1, VOCAB, (len(x), T_DEC)).astype(np.int32)
    for i, n_pad in enumerate(rng.integers(0, T_DEC, len(x))):     # pre-padding of 0..5 steps
        dec_tokens[i, :n_pad] = 0
    seq_targets = rng.uniform(-1, 1, (len(x), T_DEC, 1)).astype(np.float32)
    arrays.update({"data/x": x, "data/y": y, "data/dec_floats": dec_floats, "data/dec_tokens": dec_tokens,
                   "data/seq_targets": seq_targets})
    info["data"] = {"x": "recurrent_reference.npz data/x (encoder token ids)", "y": "its data/y",
                    "train": "rows 0:64", "valid": "rows 64:96"}
    for name, (build, dec, loss, save) in MODELS_BUILT.items():
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = build()
        init_weights(model, rng)
        inputs = x if dec is None else [x, dec_floats if dec == "floats" else dec_tokens]
        targets = seq_targets if loss == "mse" else y

        def rows(data, lo, hi):
            return [d[lo:hi] for d in data] if isinstance(data, list) else data[lo:hi]

        d = info.setdefault(name, {})
        d["inputs"] = "data/x" if dec is None else ["data/x", f"data/dec_{dec}"]
        d["targets"] = "data/seq_targets" if loss == "mse" else "data/y"
        d["weights_init"] = weight_records(model, f"{name}/init", arrays)
        d["layer_names"] = [layer.name for layer in model.layers]
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss=loss)
        hist = model.fit(rows(inputs, 0, 64), targets[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                         validation_data=(rows(inputs, 64, 96), targets[64:]))
        d["compile"] = f'optimizer=SGD(0.1, momentum=0.9), loss="{loss}"'
        d["history"] = history_dict(hist)
        d["weights_final"] = weight_records(model, f"{name}/final", arrays)
        arrays[f"{name}/predict_valid"] = np.asarray(model.predict(rows(inputs, 64, 96), verbose=0))
        if save:
            path = MODELS / f"rnn_{name}.keras"
            model.save(path)
            back = keras.saving.load_model(path)
            d["reload_max_abs_diff"] = float(np.max(np.abs(np.asarray(back.predict(rows(inputs, 64, 96), verbose=0))
                                                           - arrays[f"{name}/predict_valid"])))
            d["keras_file"] = f"models/rnn_{name}.keras (predictions: {name}/predict_valid)"


def layer_cases():
    c = {}
    for cls in ("SimpleRNN", "LSTM", "GRU"):
        K = getattr(L, cls)
        c[f"{cls}_init_mask_pre_seq_state"] = ("pre", lambda K=K: K(3, return_sequences=True, return_state=True))
        c[f"{cls}_init_mask_post_state"] = ("post", lambda K=K: K(3, return_state=True))
        c[f"{cls}_init_mask_pre_backwards"] = ("pre", lambda K=K: K(3, go_backwards=True))
    c["GRU_reset_after_false_init_mask_pre_seq_state"] = (
        "pre", lambda: L.GRU(3, reset_after=False, return_sequences=True, return_state=True))
    c["GRU_reset_after_false_nobias_init"] = ("post", lambda: L.GRU(3, reset_after=False, use_bias=False))
    return c


def layer_refs(arrays, info):
    rng = np.random.default_rng(1820)
    tokens = {"pre": np.array([[0, 0, 3, 7, 2], [5, 1, 9, 4, 8], [0, 0, 0, 0, 0]], np.int32),
              "post": np.array([[3, 7, 2, 0, 0], [5, 1, 9, 4, 8], [0, 0, 0, 0, 0]], np.int32)}
    out = info.setdefault("layers", {})
    for name, (pad, make) in layer_cases().items():
        keras.backend.clear_session()
        layer = make()
        n_states = 2 if isinstance(layer, L.LSTM) else 1
        inp = L.Input(shape=(5,), dtype="int32")
        state_ins = [L.Input(shape=(3,)) for _ in range(n_states)]
        y = layer(L.Embedding(10, 4, mask_zero=True)(inp), initial_state=state_ins)
        ys = list(y) if isinstance(y, (list, tuple)) else [y]
        model = keras.Model([inp, *state_ins], ys)
        for v in model.weights:
            v.assign(rng.uniform(-0.6, 0.6, tuple(v.shape)).astype(np.float32))
        x = tokens[pad]
        states = [tf.constant(rng.uniform(-1, 1, (3, 3)).astype(np.float32)) for _ in range(n_states)]
        with tf.GradientTape() as tape:
            for s in states:
                tape.watch(s)
            outs = model([tf.constant(x), *states], training=False)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            rs = [tf.constant(rng.standard_normal(o.shape).astype(np.float32)) for o in outs]
            loss = tf.add_n([tf.reduce_sum(o * r) for o, r in zip(outs, rs)])
        tv = list(model.trainable_variables)
        grads = tape.gradient(loss, states + [v.value for v in tv])
        p = f"layers/{name}"
        arrays[f"{p}/x"] = x
        for k, s in enumerate(states):
            arrays[f"{p}/state/{k}"] = s.numpy()
            arrays[f"{p}/dstate/{k}"] = np.asarray(grads[k])
        for i, v in enumerate(model.weights):
            arrays[f"{p}/w/{i}"] = np.asarray(v.numpy())
        for j, (o, r) in enumerate(zip(outs, rs)):
            arrays[f"{p}/y/{j}"] = np.asarray(o)
            arrays[f"{p}/r/{j}"] = np.asarray(r)
        for i, g in enumerate(grads[n_states:]):
            g = tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            arrays[f"{p}/dw/{i}"] = np.asarray(g)
        out[name] = {"padding": pad, "n_states": n_states, "class_name": type(layer).__name__,
                     "config": layer.get_config(), "output_shapes": [list(o.shape) for o in outs],
                     "weights": [{"path": v.path, "shape": list(v.shape)} for v in model.weights],
                     "dw_for": [v.path for v in tv]}


def main():
    MODELS.mkdir(exist_ok=True)
    arrays, info = {}, {}
    train_models(arrays, info)
    layer_refs(arrays, info)
    write("recurrent_state_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
