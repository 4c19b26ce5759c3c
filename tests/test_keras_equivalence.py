"""Same initial weights + same batches => the same weights as Keras 3.

The reference was written by Keras 3.15 (TensorFlow backend) with
``tests/keras_reference/make_reference.py``: a 6-8-k MLP (tanh hidden
layer) trained 3 epochs, batch 16, shuffle=False, for every pair of six
optimizer settings and five losses. fastnn repeats each run here.

Tolerance: both are float32 with different summation orders, so weights
drift apart by round-off that training feeds back (measured: at most
4e-7 relative Frobenius error, 1.3e-5 for Adam, whose ``m / sqrt(v)``
normalisation amplifies round-off in slowly moving weights). The bounds,
1e-5 and 1e-4, leave a 25x margin over that and sit far below issue 7's
1e-3: a wrong formula (a missing bias correction, epsilon inside instead of
outside the square root) moves the weights by 1e-3 or more.
"""
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras

REF = np.load(Path(__file__).with_name("keras_reference") / "training_reference.npz")

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(learning_rate=0.05),
    "momentum": lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate=0.01),
    "adam": lambda: keras.optimizers.Adam(learning_rate=0.01),
    "adagrad": lambda: keras.optimizers.Adagrad(learning_rate=0.05),
}
LOSSES = {"mse": (1, None), "mae": (2, None), "binary_crossentropy": (1, "sigmoid"),
          "categorical_crossentropy": (3, "softmax"), "sparse_categorical_crossentropy": (3, "softmax")}


def _train(opt_name, loss):
    units, act = LOSSES[loss]
    model = keras.Sequential([keras.layers.Input(shape=(6,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(units, activation=act)])
    model.set_weights([REF[f"init/{loss}/{i}"] for i in range(4)])
    model.compile(optimizer=OPTIMIZERS[opt_name](), loss=loss)
    hist = model.fit(REF["x"], REF[f"y/{loss}"], batch_size=16, epochs=3, shuffle=False, verbose=0)
    return model.get_weights(), hist.history["loss"]


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_matches_keras(opt_name, loss):
    weights, losses = _train(opt_name, loss)
    bound = 1e-4 if opt_name == "adam" else 1e-5
    for i, w in enumerate(weights):
        ref = REF[f"final/{opt_name}/{loss}/{i}"]
        rel = np.linalg.norm(w - ref) / np.linalg.norm(ref)
        assert rel < bound, f"weight {i}: relative error {rel:.2e} vs Keras"
    # Keras reports the mean of the batch losses of each epoch.
    np.testing.assert_allclose(losses, REF[f"loss/{opt_name}/{loss}"], rtol=1e-4)
