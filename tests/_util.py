"""Helpers shared by the core test modules: where the shared data lives, the
8x8 digits set, small models, and central finite differences."""
import gzip
from pathlib import Path

import numba
import numpy as np
import pytest

import fastnn as keras
from fastnn.models.training import loss_and_gradients


def shared_data_dir():
    """``../shared/data`` next to the repository, else ``/work/shared/data``; skips if neither exists."""
    for candidate in (Path(__file__).resolve().parents[1] / "../shared/data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate.resolve()
    pytest.skip("shared data directory not found (looked for ../shared/data and /work/shared/data)")


def load_digits():
    """The 1,797 8x8 digits as (x float64 (1797, 64) with values 0..16, y int64 (1797,))."""
    path = shared_data_dir() / "sklearn_bundled" / "digits.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :64], table[:, 64].astype(np.int64)


# Finite-difference step and tolerance: see test_gradients' docstring for the error analysis.
STEP = 1e-2
RTOL = 1e-3


def compiled(layers, loss="mse", optimizer="sgd", metrics=None, seed=0):
    """A Sequential of ``layers`` built with weights drawn after ``set_random_seed(seed)``."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(layers() if callable(layers) else layers)
    model.compile(loss=loss, optimizer=optimizer, metrics=metrics)
    return model


def finite_difference_gradient(model, x, y, step, indices=None):
    """Central differences of the mean loss with respect to the trainable entries
    ``indices`` of ``model._params`` (default: all ``model._n_trainable``); float64.

    The divisor is the step actually taken after rounding the perturbed weight
    to float32, not the nominal ``step``. The thousands of loss evaluations run
    on one Numba thread: a parallel region waits for every thread each time,
    which is slow whenever other processes share the cores, and the quotients
    only need both losses computed the same way."""
    params = model._params
    indices = np.arange(model._n_trainable) if indices is None else np.asarray(indices)
    grad = np.zeros(len(indices))
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for k, i in enumerate(indices):
            original = params[i]
            params[i] = original + np.float32(step)
            up, loss_up = float(params[i]), loss_and_gradients(model, x, y)[0]
            params[i] = original - np.float32(step)
            down, loss_down = float(params[i]), loss_and_gradients(model, x, y)[0]
            params[i] = original
            grad[k] = (loss_up - loss_down) / (up - down)
    finally:
        numba.set_num_threads(threads)
    return grad


def assert_gradient_matches(model, x, y, indices=None):
    """Every trainable entry (or those in ``indices``) against finite differences."""
    loss, grad = loss_and_gradients(model, x, y)
    assert grad.dtype == np.float32 and grad.shape == model._params.shape
    assert np.isfinite(loss)
    indices = np.arange(model._n_trainable) if indices is None else np.asarray(indices)
    fd = finite_difference_gradient(model, x, y, STEP, indices)
    scale = np.abs(fd).max()
    assert scale > 1e-2, "the loss barely depends on the weights; the check would be vacuous"
    err = np.abs(grad[indices] - fd)
    worst = int(err.argmax())
    assert err[worst] <= RTOL * scale, (
        f"gradient entry {indices[worst]} is {grad[indices[worst]]:.6g}, finite differences give "
        f"{fd[worst]:.6g} (max |fd| {scale:.3g})")


def without_object_ids(obj):
    """A JSON document without Keras's ``shared_object_id`` (the id() of a dtype policy two configs
    share, in the saving process: it differs between any two files)."""
    if isinstance(obj, dict):
        return {k: without_object_ids(v) for k, v in obj.items() if k != "shared_object_id"}
    if isinstance(obj, list):
        return [without_object_ids(v) for v in obj]
    return obj


def key_structure(obj):
    """The nested keys and value types of a JSON document, values dropped."""
    if isinstance(obj, dict):
        return {k: key_structure(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [key_structure(v) for v in obj]
    return type(obj).__name__
