"""pytest-benchmark suite (not part of the CI test command):

    python -m pytest benchmarks/ --benchmark-only

One training epoch of the seeds' MLP at batch 32/128/1024 on MNIST (or
synthetic data of its shape), predict on 10,000 images, and one Adam update
over a 1M-parameter flat buffer; the CNN chapter's model (issue 17): an
epoch at batch 32/128 and predict on 10,000 images. ``FASTNN_BENCH_ROWS`` shrinks the epoch
(e.g. 2048 for a smoke run).
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mlp_data  # noqa: E402

import fastnn as keras  # noqa: E402
from fastnn.kernels import program as P  # noqa: E402
from fastnn.kernels.cpu.optimizers import apply_update  # noqa: E402

ROWS = int(os.environ.get("FASTNN_BENCH_ROWS", "60000"))


@pytest.fixture(scope="module")
def mnist():
    return mlp_data.load(ROWS)


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(shape=(784,)), keras.layers.Dense(300, activation="relu"),
                              keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("batch", [32, 128, 1024])
def test_epoch(benchmark, mnist, batch):
    xtr, ytr = mnist[0], mnist[1]
    model = _model()
    model.fit(xtr[:batch], ytr[:batch], batch_size=batch, verbose=0)   # compile / cache load
    benchmark.pedantic(model.fit, args=(xtr, ytr), kwargs={"batch_size": batch, "verbose": 0},
                       rounds=3, iterations=1)
    assert np.isfinite(model.history.history["loss"][-1])


def test_predict_10k(benchmark, mnist):
    model = _model()
    xte = mnist[2]
    model.predict(xte[:10], verbose=0)
    out = benchmark(model.predict, xte, batch_size=1024, verbose=0)
    assert out.shape == (xte.shape[0], 10)


def _cnn():
    L = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(32, 3, activation="relu", padding="same"),
                              L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu", padding="same"), L.MaxPooling2D(2),
                              L.Flatten(), L.Dense(100, activation="relu"), L.Dropout(0.4),
                              L.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("batch", [32, 128])
def test_cnn_epoch(benchmark, mnist, batch):
    xtr, ytr = mnist[0].reshape(-1, 28, 28, 1), mnist[1]
    model = _cnn()
    model.fit(xtr[:batch], ytr[:batch], batch_size=batch, verbose=0)   # compile / cache load
    benchmark.pedantic(model.fit, args=(xtr, ytr), kwargs={"batch_size": batch, "verbose": 0},
                       rounds=2, iterations=1)
    assert np.isfinite(model.history.history["loss"][-1])


def test_cnn_predict_10k(benchmark, mnist):
    model = _cnn()
    xte = mnist[2].reshape(-1, 28, 28, 1)
    model.predict(xte[:10], verbose=0)
    out = benchmark(model.predict, xte, batch_size=1024, verbose=0)
    assert out.shape == (xte.shape[0], 10)


def test_adam_update_1m(benchmark):
    n = 1_000_000
    rng = np.random.default_rng(0)
    w, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    slots = np.zeros((2, n), np.float32)
    hp = keras.optimizers.Adam().hyper()
    import numba
    parts = numba.get_num_threads()
    apply_update(P.ADAM, hp, 1, w, g, slots, n, parts)
    benchmark(apply_update, P.ADAM, hp, 2, w, g, slots, n, parts)
    assert np.isfinite(w).all()
