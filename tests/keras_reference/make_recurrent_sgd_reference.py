"""Writes recurrent_sgd_reference.{npz,json}: the recurrent models of
make_recurrent_reference.py trained with SGD(learning_rate=0.1, momentum=0.9).

Run with a Python that has Keras 3 (TensorFlow backend) installed; the committed
files were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_recurrent_sgd_reference.py

Why a second optimizer: on the TensorFlow backend an Embedding's gradient is a
``tf.IndexedSlices`` with one slice per token occurrence, and Keras 3's
optimizers square it slice by slice, so RMSprop/Adam/Adagrad accumulate
``sum_k g_k^2`` for a token seen k times in a batch where the dense gradient
(JAX and torch backends, fastnn) gives ``(sum_k g_k)^2``. SGD with momentum is
linear in the gradient, so it is the same on every backend and tests the
layers' maths exactly. ``rmsprop_one_step`` checks that explanation: one
RMSprop step from the stored initial weights, and the same step done in NumPy
with the per-occurrence squares (``velocity_sparse``) and the dense ones.

Data and initial weights: those stored in recurrent_reference.npz (same
names), plus two masked models with weights drawn the same way: ``masked_gru_pool``
(Embedding(mask_zero=True), GRU(8, return_sequences=True),
GlobalAveragePooling1D) and ``masked_bidirectional_lstm``
(Embedding(mask_zero=True), Bidirectional(LSTM(8))); each model ends in
Dense(1, sigmoid). binary_crossentropy, 3 epochs, batch 16, shuffle=False.
"""
import numpy as np

from _common import HERE, history_dict, keras_module, weight_records, write
from make_recurrent_reference import EMB, MAXLEN, MODEL_BUILDERS, VOCAB, init_weights

keras, tf = keras_module()
L = keras.layers

BUILDERS = dict(MODEL_BUILDERS)
BUILDERS["masked_gru_pool"] = lambda: [L.GRU(8, return_sequences=True), L.GlobalAveragePooling1D()]
BUILDERS["masked_bidirectional_lstm"] = lambda: [L.Bidirectional(L.LSTM(8))]


def build(name):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    return keras.Sequential([L.Input(shape=(MAXLEN,)), L.Embedding(VOCAB, EMB, mask_zero=name.startswith("masked")),
                             *BUILDERS[name](), L.Dense(1, activation="sigmoid")], name=name)


def main():
    base = np.load(HERE / "recurrent_reference.npz")
    x, y = base["data/x"], base["data/y"]
    arrays, info = {"data/x": x, "data/y": y}, {}
    rng = np.random.default_rng(1818)
    for name in BUILDERS:
        model = build(name)
        if f"{name}/init/0" in base.files:
            model.set_weights([base[f"{name}/init/{i}"] for i in range(len(model.weights))])
        else:
            init_weights(model, rng)
        d = info.setdefault(name, {})
        d["weights_init"] = weight_records(model, f"{name}/init", arrays)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss="binary_crossentropy",
                      metrics=["accuracy"])
        hist = model.fit(x[:64], y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                         validation_data=(x[64:], y[64:]))
        d["compile"] = 'optimizer=SGD(0.1, momentum=0.9), loss="binary_crossentropy", metrics=["accuracy"]'
        d["history"] = history_dict(hist)
        d["weights_final"] = weight_records(model, f"{name}/final", arrays)
        arrays[f"{name}/predict_valid"] = np.asarray(model.predict(x[64:], verbose=0))

    # One RMSprop step of the LSTM model on the first batch, against NumPy with both squares.
    model = build("lstm")
    model.set_weights([base[f"lstm/init/{i}"] for i in range(len(model.weights))])
    xb, yb = x[:16], y[:16]
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(yb[:, None], model(xb, training=True))
        loss = tf.reduce_mean(loss)
    emb = model.weights[0]
    grad = tape.gradient(loss, emb.value)
    dense = tf.convert_to_tensor(grad).numpy()
    per_occurrence = np.zeros_like(dense)
    np.add.at(per_occurrence, grad.indices.numpy(), grad.values.numpy() ** 2)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3), loss="binary_crossentropy")
    model.fit(xb, yb, epochs=1, batch_size=16, shuffle=False, verbose=0)
    w0 = base["lstm/init/0"].astype(np.float32)
    lr, rho, eps = np.float32(1e-3), np.float32(0.9), np.float32(1e-7)
    after = {}
    for what, sq in (("dense", dense ** 2), ("sparse", per_occurrence)):
        v = (np.float32(1) - rho) * sq
        after[what] = w0 - lr * dense / np.sqrt(v + eps)
    keras_w = emb.numpy()
    arrays["rmsprop_one_step/keras"] = keras_w
    info["rmsprop_one_step"] = {
        "max_abs_diff_sparse_squares": float(np.abs(keras_w - after["sparse"]).max()),
        "max_abs_diff_dense_squares": float(np.abs(keras_w - after["dense"]).max())}
    write("recurrent_sgd_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
