"""Writes recurrent_reference.{npz,json}, rnn_layers_reference.{npz,json} and models/rnn_*.keras.

Run with a Python that has Keras 3 (TensorFlow backend) installed; the committed
files were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_recurrent_reference.py

Training parity (recurrent_reference): 64 training + 32 validation token
sequences (vocabulary 50, lengths 3..16, ``keras.utils.pad_sequences(maxlen=12)``:
pre-padding with 0, longer ones truncated at the front), 0/1 labels. Models
``Embedding(50, 8)`` + one of SimpleRNN(8), LSTM(8), GRU(8) (reset_after=True),
Bidirectional(LSTM(8)), LSTM(8, return_sequences=True) + LSTM(8), and
Embedding(mask_zero=True) + LSTM(8); each then Dense(1, sigmoid),
binary_crossentropy, RMSprop(1e-3), metrics=["accuracy"], 3 epochs, batch 16,
shuffle=False, validation_data; initial weights drawn here with NumPy and
stored. Records initial/final weights (model.weights order with paths),
history, evaluate, predictions, summary, config; ``models/rnn_<name>.keras`` for
the LSTM, GRU and Bidirectional models.

Per-layer references (rnn_layers_reference, ``layers/<case>/...``): input
``x``, weights ``w/<i>`` (model.weights order), outputs ``y/<j>`` (several when
return_state or merge_mode=None), and gradients of sum_j sum(y_j * r_j) w.r.t.
the float input (``dx``) and the trainable weights (``dw/<i>``). Each case is a
tiny functional model so masks flow from Embedding(mask_zero=True).
``pad/<case>`` holds keras.utils.pad_sequences results (json: arguments,
dtype, or the error Keras raised); ``to_categorical/<case>`` likewise.
"""
import numpy as np

from _common import HERE, history_dict, keras_module, summary_text, weight_records, write

keras, tf = keras_module()
L = keras.layers
MODELS = HERE / "models"
VOCAB, MAXLEN, EMB, UNITS = 50, 12, 8, 8


def make_data(rng, n):
    seqs, labels = [], []
    for _ in range(n):
        length = int(rng.integers(3, 17))
        s = rng.integers(1, VOCAB, length)
        label = int(np.sum(s[-MAXLEN:] < 10) >= 2)  # "positive" if two low-id tokens are kept
        seqs.append(s.tolist())
        labels.append(label)
    return seqs, np.array(labels, dtype=np.float32)


def init_weights(model, rng):
    for v in model.weights:
        shape = tuple(v.shape)
        if "embeddings" in v.path:
            val = rng.uniform(-0.5, 0.5, shape)
        elif len(shape) >= 2 and "bias" not in v.path:
            lim = np.sqrt(6.0 / (shape[0] + shape[-1]))
            val = rng.uniform(-lim, lim, shape)
        else:
            val = rng.uniform(-0.1, 0.1, shape)
        v.assign(val.astype(np.float32))


MODEL_BUILDERS = {
    "simple_rnn": lambda: [L.SimpleRNN(UNITS)],
    "lstm": lambda: [L.LSTM(UNITS)],
    "gru": lambda: [L.GRU(UNITS)],
    "bidirectional_lstm": lambda: [L.Bidirectional(L.LSTM(UNITS))],
    "stacked_lstm": lambda: [L.LSTM(UNITS, return_sequences=True), L.LSTM(UNITS)],
    "masked_lstm": lambda: [L.LSTM(UNITS)],
}


def train_models(arrays, info):
    rng = np.random.default_rng(18)
    seqs, y = make_data(rng, 96)
    x = keras.utils.pad_sequences(seqs, maxlen=MAXLEN)
    arrays["data/x"] = x
    arrays["data/y"] = y
    info["data"] = {"x": "keras.utils.pad_sequences(seqs, maxlen=12) (int32, pre padding/truncating)",
                    "seqs": seqs, "train": "rows 0:64", "valid": "rows 64:96",
                    "zero_fraction": float(np.mean(x == 0))}
    for name, body in MODEL_BUILDERS.items():
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = keras.Sequential([L.Input(shape=(MAXLEN,)), L.Embedding(VOCAB, EMB, mask_zero=(name == "masked_lstm")),
                                  *body(), L.Dense(1, activation="sigmoid")], name=name)
        init_weights(model, rng)
        d = info.setdefault(name, {})
        d["weights_init"] = weight_records(model, f"{name}/init", arrays)
        d["summary_untrained"] = summary_text(model)
        d["layer_names"] = [layer.name for layer in model.layers]
        d["config"] = model.get_config()
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3), loss="binary_crossentropy",
                      metrics=["accuracy"])
        hist = model.fit(x[:64], y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                         validation_data=(x[64:], y[64:]))
        d["compile"] = 'optimizer=RMSprop(1e-3), loss="binary_crossentropy", metrics=["accuracy"]'
        d["history"] = history_dict(hist)
        d["evaluate_dict"] = {k: float(v) for k, v in
                              model.evaluate(x[64:], y[64:], verbose=0, return_dict=True).items()}
        d["weights_final"] = weight_records(model, f"{name}/final", arrays)
        arrays[f"{name}/predict_valid"] = np.asarray(model.predict(x[64:], verbose=0))
        if name in ("lstm", "gru", "bidirectional_lstm"):
            path = MODELS / f"rnn_{name}.keras"
            model.save(path)
            back = keras.saving.load_model(path)
            d["reload_max_abs_diff"] = float(np.max(np.abs(back.predict(x[64:], verbose=0)
                                                           - arrays[f"{name}/predict_valid"])))
            d["keras_file"] = f"models/rnn_{name}.keras (predictions: {name}/predict_valid)"


# ---------------------------------------------------------------- per-layer references
def layer_cases():
    c = {}
    f = "float"      # float input (batch 3, time 5, features 4)
    t = "tokens"     # int tokens with zero padding, through Embedding(mask_zero=True)
    for cls in ("SimpleRNN", "LSTM", "GRU"):
        K = getattr(L, cls)
        c[f"{cls}_last"] = (f, lambda K=K: K(3))
        c[f"{cls}_seq"] = (f, lambda K=K: K(3, return_sequences=True))
        c[f"{cls}_state"] = (f, lambda K=K: K(3, return_state=True))
        c[f"{cls}_seq_state"] = (f, lambda K=K: K(3, return_sequences=True, return_state=True))
        c[f"{cls}_backwards"] = (f, lambda K=K: K(3, go_backwards=True))
        c[f"{cls}_backwards_seq"] = (f, lambda K=K: K(3, go_backwards=True, return_sequences=True))
        c[f"{cls}_mask_pre"] = (t + "_pre", lambda K=K: K(3))
        c[f"{cls}_mask_post"] = (t + "_post", lambda K=K: K(3))
        c[f"{cls}_mask_post_seq"] = (t + "_post", lambda K=K: K(3, return_sequences=True))
        c[f"{cls}_mask_pre_seq"] = (t + "_pre", lambda K=K: K(3, return_sequences=True))
        c[f"{cls}_mask_pre_backwards"] = (t + "_pre", lambda K=K: K(3, go_backwards=True))
    c["SimpleRNN_relu"] = (f, lambda: L.SimpleRNN(3, activation="relu"))
    c["SimpleRNN_nobias"] = (f, lambda: L.SimpleRNN(3, use_bias=False))
    c["LSTM_unit_forget_bias_false"] = (f, lambda: L.LSTM(3, unit_forget_bias=False))
    c["GRU_reset_after_false"] = (f, lambda: L.GRU(3, reset_after=False))
    c["GRU_reset_after_false_seq"] = (f, lambda: L.GRU(3, reset_after=False, return_sequences=True))
    c["GRU_reset_after_false_mask_post"] = (t + "_post", lambda: L.GRU(3, reset_after=False))
    c["LSTM_dropout_inference"] = (f, lambda: L.LSTM(3, dropout=0.3, recurrent_dropout=0.2))
    c["LSTM_unroll"] = (f, lambda: L.LSTM(3, unroll=True))
    for mode in ("concat", "sum", "mul", "ave", None):
        c[f"Bidirectional_LSTM_{mode}"] = (f, lambda mode=mode: L.Bidirectional(L.LSTM(3), merge_mode=mode))
    c["Bidirectional_GRU_seq"] = (f, lambda: L.Bidirectional(L.GRU(3, return_sequences=True)))
    c["Bidirectional_LSTM_mask_post_seq"] = (t + "_post", lambda: L.Bidirectional(L.LSTM(3, return_sequences=True)))
    c["Bidirectional_LSTM_state"] = (f, lambda: L.Bidirectional(L.LSTM(3, return_state=True)))
    c["TimeDistributed_Dense"] = (f, lambda: L.TimeDistributed(L.Dense(2, activation="tanh")))
    c["Dense_on_sequence"] = (f, lambda: L.Dense(2))
    c["GlobalAveragePooling1D_mask_post"] = (t + "_post", lambda: L.GlobalAveragePooling1D())
    c["GlobalAveragePooling1D_mask_pre"] = (t + "_pre", lambda: L.GlobalAveragePooling1D())
    c["GlobalMaxPooling1D_mask_post"] = (t + "_post", lambda: L.GlobalMaxPooling1D())
    c["Embedding_only_mask"] = (t + "_post", None)
    c["Embedding_no_mask"] = ("tokens_nomask", None)
    return c


def layer_refs(arrays, info):
    rng = np.random.default_rng(1818)
    xf = rng.standard_normal((3, 5, 4)).astype(np.float32)
    tokens = {"tokens_pre": np.array([[0, 0, 3, 7, 2], [5, 1, 9, 4, 8], [0, 0, 0, 0, 6]], np.int32),
              "tokens_post": np.array([[3, 7, 2, 0, 0], [5, 1, 9, 4, 8], [6, 0, 0, 0, 0]], np.int32),
              "tokens_nomask": np.array([[3, 7, 2, 0, 0], [5, 1, 9, 4, 8], [6, 0, 0, 0, 0]], np.int32)}
    out = info.setdefault("layers", {})
    for name, (kind, make) in layer_cases().items():
        keras.backend.clear_session()
        if kind == "float":
            inp = L.Input(shape=(5, 4))
            h = inp
            x = xf
        else:
            inp = L.Input(shape=(5,), dtype="int32")
            h = L.Embedding(10, 4, mask_zero=(kind != "tokens_nomask"))(inp)
            x = tokens[kind]
        y = make()(h) if make is not None else h
        ys = list(y) if isinstance(y, (list, tuple)) else [y]
        model = keras.Model(inp, ys)
        for v in model.weights:
            v.assign(rng.uniform(-0.6, 0.6, tuple(v.shape)).astype(np.float32))
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            if kind == "float":
                tape.watch(xt)
            outs = model(xt, training=False)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            rs = [tf.constant(rng.standard_normal(o.shape).astype(np.float32)) for o in outs]
            loss = tf.add_n([tf.reduce_sum(o * r) for o, r in zip(outs, rs)])
        tv = list(model.trainable_variables)
        grads = tape.gradient(loss, ([xt] if kind == "float" else []) + [v.value for v in tv])
        p = f"layers/{name}"
        arrays[f"{p}/x"] = x
        for i, v in enumerate(model.weights):
            arrays[f"{p}/w/{i}"] = np.asarray(v.numpy())
        for j, (o, r) in enumerate(zip(outs, rs)):
            arrays[f"{p}/y/{j}"] = np.asarray(o)
            arrays[f"{p}/r/{j}"] = np.asarray(r)
        if kind == "float":
            arrays[f"{p}/dx"] = np.asarray(grads[0])
            grads = grads[1:]
        for i, g in enumerate(grads):
            g = tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            arrays[f"{p}/dw/{i}"] = np.asarray(g)
        layer = model.layers[-1]
        rec = {"input": kind, "model_layers": [type(lyr).__name__ for lyr in model.layers],
               "output_shapes": [list(o.shape) for o in outs],
               "weights": [{"path": v.path, "shape": list(v.shape), "trainable": bool(v.trainable)} for v in model.weights],
               "dw_for": [v.path for v in tv], "config": layer.get_config()}
        out[name] = rec
    info["layers_note"] = ("model = Input -> [Embedding(10, 4, mask_zero) for token inputs] -> layer; "
                           "y/<j> = model(x, training=False) outputs; r/<j> random; dx and dw/<i> are the "
                           "gradients of sum_j sum(y_j * r_j) w.r.t. the float input and trainable_variables[i] "
                           "(order: dw_for); w/<i> are model.weights (paths in weights)")


# ---------------------------------------------------------------- pad_sequences, to_categorical
def pad_refs(arrays, info):
    ragged = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10, 11]]
    cases = {
        "default": (ragged, {}),
        "maxlen3": (ragged, dict(maxlen=3)),
        "maxlen3_trunc_post": (ragged, dict(maxlen=3, truncating="post")),
        "maxlen3_pad_post": (ragged, dict(maxlen=3, padding="post")),
        "maxlen3_pad_post_trunc_post": (ragged, dict(maxlen=3, padding="post", truncating="post")),
        "maxlen7_value_-1": (ragged, dict(maxlen=7, value=-1)),
        "maxlen0": (ragged, dict(maxlen=0)),
        "with_empty": ([[1, 2], [], [3]], {}),
        "with_empty_post": ([[1, 2], [], [3]], dict(padding="post", value=9)),
        "all_empty": ([[], []], {}),
        "float_values_default_dtype": ([[0.5, 1.7, -2.6], [3.9]], {}),
        "float_values_float32": ([[0.5, 1.7, -2.6], [3.9]], dict(dtype="float32")),
        "float32_value_nan": ([[0.5, 1.7, -2.6], [3.9]], dict(dtype="float32", value=np.nan)),
        "int64": (ragged, dict(dtype="int64")),
        "uint8_big_values": ([[300, 2], [255]], dict(dtype="uint8")),
        "numpy_rows": ([np.array([1, 2, 3]), np.array([4])], {}),
        "vectors": ([[[1, 2], [3, 4], [5, 6]], [[7, 8]]], dict(dtype="float32")),
        "vectors_maxlen2_post": ([[[1, 2], [3, 4], [5, 6]], [[7, 8]]], dict(maxlen=2, padding="post", truncating="post")),
        "strings_object": ([["a", "bb"], ["c"]], dict(dtype=object, value="")),
        "strings_str": ([["a", "bb"], ["c"]], dict(dtype="str", value="_")),
        "tuple_of_tuples": (((1, 2), (3,)), {}),
        "numpy_2d_input": (np.array([[1, 2, 3], [4, 5, 6]]), dict(maxlen=2)),
        "bad_padding": (ragged, dict(padding="middle")),
        "bad_truncating": (ragged, dict(maxlen=2, truncating="middle")),
        "strings_with_int_dtype": ([["a", "bb"], ["c"]], dict(value="")),
        "not_a_list_of_sequences": ([1, 2, 3], {}),
    }
    out = info.setdefault("pad_sequences", {})
    for name, (seqs, kw) in cases.items():
        rec = {"sequences": repr(seqs), "kwargs": {k: repr(v) for k, v in kw.items()}}
        try:
            r = keras.utils.pad_sequences(seqs, **kw)
            rec.update(shape=list(r.shape), dtype=str(r.dtype), result=r.tolist())
            if r.dtype != object:
                arrays[f"pad/{name}"] = r
        except Exception as e:  # noqa: BLE001
            rec["error"] = f"{type(e).__name__}: {e}"[:500]
        out[name] = rec
    tc = {
        "ints": ([0, 2, 1, 2], {}),
        "ints_num_classes5": ([0, 2, 1, 2], dict(num_classes=5)),
        "column": ([[0], [2], [1]], {}),
        "matrix": ([[0, 1, 3], [2, 2, 0]], {}),
        "floats": ([0.0, 2.0, 1.0], {}),
    }
    out = info.setdefault("to_categorical", {})
    for name, (labels, kw) in tc.items():
        rec = {"labels": repr(labels), "kwargs": kw}
        try:
            r = keras.utils.to_categorical(labels, **kw)
            arrays[f"to_categorical/{name}"] = r
            rec.update(shape=list(r.shape), dtype=str(r.dtype))
        except Exception as e:  # noqa: BLE001
            rec["error"] = f"{type(e).__name__}: {e}"[:500]
        out[name] = rec
    info["pad_sequences_aliases"] = {
        "keras.preprocessing.sequence.pad_sequences is keras.utils.pad_sequences":
            keras.preprocessing.sequence.pad_sequences is keras.utils.pad_sequences}


def main():
    MODELS.mkdir(exist_ok=True)
    arrays, info = {}, {}
    train_models(arrays, info)
    write("recurrent_reference", arrays, info, keras)
    arrays, info = {}, {}
    layer_refs(arrays, info)
    pad_refs(arrays, info)
    write("rnn_layers_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
