"""Embedding on the CUDA device, against the CPU kind: a bag-of-embeddings text classifier
(Embedding, GlobalAveragePooling1D or Flatten, Dense) gives the CPU's outputs, gradients and
trained weights. Device tests: see ``test_cuda.py``'s docstring (they run under Numba's CUDA
simulator in its subprocess).
"""
import sys

import numpy as np
import pytest

import fastnn as keras
from numba.core import config as numba_config

if numba_config.ENABLE_CUDASIM:
    sys.setswitchinterval(5e-4)     # see test_cuda.py: the simulator's threads wait less for the GIL
    # importing the device kernels loads Numba's random module, whose object-mode jit warns (harmless)
    pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning"),
                  pytest.mark.filterwarnings("ignore:The keyword argument 'nopython=False'")]
device = pytest.mark.cuda_device
RNG = np.random.default_rng(31)
L = keras.layers


def _classifier(pool):
    keras.set_random_seed(6)
    model = keras.Sequential([L.Input(shape=(5,)), L.Embedding(7, 3), pool, L.Dense(4, activation="relu"),
                              L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


# Ids repeat within a sample and across samples (their rows' gradients are sums); id 6 never occurs.
IDS = np.array([[1, 2, 2, 0, 5], [5, 5, 5, 1, 0], [3, 1, 4, 1, 5], [0, 0, 2, 3, 4]], np.float32)
Y = np.array([0, 1, 1, 0])


@device
@pytest.mark.parametrize("pool", ["global-average", "flatten"])
def test_embedding_forward_gradient_and_training_match_the_cpu(pool):
    from fastnn.models.training import loss_and_gradients
    make = lambda: _classifier(L.GlobalAveragePooling1D() if pool == "global-average" else L.Flatten())  # noqa
    model = make()
    with keras.device("cpu"):
        p0 = model.predict(IDS, verbose=0)
        loss0, g0 = loss_and_gradients(model, IDS, Y)
    with keras.device("cuda"):
        p1 = model.predict(IDS, verbose=0)
        loss1, g1 = loss_and_gradients(model, IDS, Y)
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-7)
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    rows = g0[:7 * 3].reshape(7, 3)
    assert np.all(np.abs(rows[:6]).max(axis=1) > 0) and not rows[6].any()     # only the seen rows have one
    np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6 * np.abs(g0).max())
    trained = []
    for dev in ("cpu", "cuda"):
        model = make()
        with keras.device(dev):
            model.fit(IDS, Y, batch_size=3, epochs=1, shuffle=False, verbose=0)     # batches of 3 and 1
        trained.append(model.get_weights())
    for a, b in zip(*trained):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
