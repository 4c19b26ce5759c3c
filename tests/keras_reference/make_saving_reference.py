"""Writes keras_reference/saving/: .keras files Keras 3 wrote, for fastnn's loading tests.

Run with a Python that has Keras 3 installed (the files in the repository were
written by Keras 3.15.1 on its JAX backend):

    KERAS_BACKEND=jax python tests/keras_reference/make_saving_reference.py

For SGD with Nesterov momentum, RMSprop and Adagrad (Adam is covered by the
shared mnist_mlp/regressor files) it trains a small model holding every layer
fastnn has, one Dense layer frozen, for one epoch (shuffle=False), saves it as
``<optimizer>.keras``, then trains one more epoch the same way. ``reference.npz``
holds the inputs and labels, Keras's predictions of each saved model, and the
Dense weights after the extra epoch, so the tests need no Keras.
"""
from pathlib import Path

import numpy as np
import keras

OUT = Path(__file__).resolve().parent / "saving"
OPTIMIZERS = {
    "nesterov": lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate=0.01),
    "adagrad": lambda: keras.optimizers.Adagrad(learning_rate=0.05),
}


def model(name, x):
    L = keras.layers
    m = keras.Sequential([keras.Input((4, 3)), L.Flatten(), L.Rescaling(0.5, offset=0.25), L.Normalization(),
                          L.Dense(8, activation="relu"), L.Dropout(0.0), L.Dense(6), L.Activation("tanh"),
                          L.Reshape((3, 2)), L.Flatten(), L.Dense(3, activation="softmax")], name=name)
    m.layers[2].adapt(x.reshape(len(x), -1) * 0.5 + 0.25)
    m.layers[5].trainable = False          # the second Dense: frozen, so it has no optimizer slots
    return m


def main():
    rng = np.random.default_rng(0)
    x = rng.random((64, 4, 3)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    keras.utils.set_random_seed(0)
    OUT.mkdir(exist_ok=True)
    ref = {"x": x, "y": y}
    for name, make in OPTIMIZERS.items():
        m = model(name, x)
        m.compile(optimizer=make(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        m.save(OUT / f"{name}.keras")
        ref[f"{name}_predictions"] = np.asarray(m.predict(x, verbose=0))
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        dense = [layer for layer in m.layers if isinstance(layer, keras.layers.Dense)]
        for i, w in enumerate(w for layer in dense for w in layer.get_weights()):
            ref[f"{name}_after_{i}"] = np.asarray(w)
    np.savez_compressed(OUT / "reference.npz", **ref)


if __name__ == "__main__":
    main()
