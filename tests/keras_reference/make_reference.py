"""Writes training_reference.npz: what Keras 3 does, for fastnn's equivalence test.

Run with a Python that has Keras 3 (TensorFlow backend) installed:

    python tests/keras_reference/make_reference.py

For every (optimizer, loss) pair it trains the same small model from the same
initial weights on the same batches (shuffle=False) and stores the final
weights and the per-epoch losses Keras reports. Inputs and initial weights are
drawn here from a fixed seed and stored too, so the test needs no Keras.
"""
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

N, FEATURES, HIDDEN, BATCH, EPOCHS = 64, 6, 8, 16, 3

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(learning_rate=0.05),
    "momentum": lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate=0.01),
    "adam": lambda: keras.optimizers.Adam(learning_rate=0.01),
    "adagrad": lambda: keras.optimizers.Adagrad(learning_rate=0.05),
}
# loss name -> (output units, output activation)
LOSSES = {
    "mse": (1, None),
    "mae": (2, None),
    "binary_crossentropy": (1, "sigmoid"),
    "categorical_crossentropy": (3, "softmax"),
    "sparse_categorical_crossentropy": (3, "softmax"),
}


def targets(loss, rng):
    if loss == "mse":
        return rng.standard_normal((N, 1)).astype(np.float32)
    if loss == "mae":
        return rng.standard_normal((N, 2)).astype(np.float32)
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, (N, 1)).astype(np.float32)
    labels = rng.integers(0, 3, N)
    if loss == "categorical_crossentropy":
        return np.eye(3, dtype=np.float32)[labels]
    return labels.astype(np.int64)


def main():
    rng = np.random.default_rng(2024)
    out = {"x": rng.standard_normal((N, FEATURES)).astype(np.float32)}
    for loss, (units, act) in LOSSES.items():
        out[f"y/{loss}"] = targets(loss, rng)
        init = [rng.uniform(-0.5, 0.5, (FEATURES, HIDDEN)).astype(np.float32),
                rng.uniform(-0.1, 0.1, HIDDEN).astype(np.float32),
                rng.uniform(-0.5, 0.5, (HIDDEN, units)).astype(np.float32),
                rng.uniform(-0.1, 0.1, units).astype(np.float32)]
        for i, w in enumerate(init):
            out[f"init/{loss}/{i}"] = w
        for opt_name, make_opt in OPTIMIZERS.items():
            model = keras.Sequential([keras.layers.Input(shape=(FEATURES,)),
                                      keras.layers.Dense(HIDDEN, activation="tanh"),
                                      keras.layers.Dense(units, activation=act)])
            model.set_weights(init)
            model.compile(optimizer=make_opt(), loss=loss)
            hist = model.fit(out["x"], out[f"y/{loss}"], batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
            for i, w in enumerate(model.get_weights()):
                out[f"final/{opt_name}/{loss}/{i}"] = w
            out[f"loss/{opt_name}/{loss}"] = np.array(hist.history["loss"])
    out["keras_version"] = np.array(keras.__version__)
    path = Path(__file__).with_name("training_reference.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({len(out)} arrays, Keras {keras.__version__})")


if __name__ == "__main__":
    main()
