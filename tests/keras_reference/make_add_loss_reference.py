"""Writes add_loss_reference.{npz,json}: Keras 3 training with add_loss and activity_regularizer.

Run with a Python that has Keras 3 (TensorFlow backend) installed; the committed
files were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_add_loss_reference.py

Two runs from the same NumPy-drawn weights and data (16 samples of 3
features, 1 target), SGD(0.1), 3 epochs, batch 8, shuffle=False: ``layer``,
``Sequential([Input((3,)), Dense(4, tanh), ActivityL2(0.05), Dense(1)])``
whose ActivityL2 calls ``self.add_loss(0.05 * ops.mean(ops.sum(ops.square(x),
axis=-1)))``; ``builtin``, the same with ``Dense(4, tanh,
activity_regularizer=l2(0.05))`` instead (Keras divides that penalty by the
batch size, so the two are the same maths). Stored: history, evaluate (batch
8) before and after training, the final weights.
"""
import numpy as np

from _common import history_dict, keras_module, write

keras, tf = keras_module()
L = keras.layers
ops = keras.ops
FACTOR = 0.05


class ActivityL2(L.Layer):
    def __init__(self, factor=FACTOR, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        self.add_loss(self.factor * ops.mean(ops.sum(ops.square(inputs), axis=-1)))
        return inputs


def main():
    rng = np.random.default_rng(20)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    init = [rng.standard_normal((3, 4)).astype(np.float32) * 0.5, rng.standard_normal(4).astype(np.float32) * 0.1,
            rng.standard_normal((4, 1)).astype(np.float32) * 0.5, np.zeros(1, np.float32)]
    arrays = {"data/x": x, "data/y": y, **{f"init/{i}": w for i, w in enumerate(init)}}
    info = {}
    for case in ("layer", "builtin"):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        if case == "layer":
            hidden = [L.Dense(4, activation="tanh"), ActivityL2()]
        else:
            hidden = [L.Dense(4, activation="tanh", activity_regularizer=keras.regularizers.l2(FACTOR))]
        model = keras.Sequential([keras.Input((3,)), *hidden, L.Dense(1)])
        model.set_weights(init)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        before = model.evaluate(x, y, batch_size=8, verbose=0)
        hist = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        after = model.evaluate(x, y, batch_size=8, verbose=0)
        for i, w in enumerate(model.get_weights()):
            arrays[f"{case}/final/{i}"] = w
        info[case] = {"history": history_dict(hist), "evaluate_before": float(before), "evaluate_after": float(after)}
    write("add_loss_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
