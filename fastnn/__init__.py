"""fastnn: Keras-shaped neural networks trained by Numba-compiled loops.

``import fastnn as keras`` and write Keras code: ``keras.Sequential``,
``keras.layers.Dense``, ``model.compile``, ``model.fit``, ...
"""
from . import activations, callbacks, initializers, layers, losses, metrics, models, optimizers, utils
from . import regularizers
from . import backend, constraints, ops
from . import datasets, errors
from .layers import Input
from .models import Model, Sequential
from .utils import set_random_seed
from . import config
from .config import device

__version__ = "0.1.0"


def __getattr__(name):
    # fastnn.saving (and h5py, ~30 ms) is imported on first use, not with fastnn.
    if name == "saving":
        import importlib
        return importlib.import_module(".saving", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Model", "Sequential", "Input", "activations", "callbacks", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "utils", "set_random_seed", "datasets", "config", "device", "saving",
           "regularizers", "errors", "backend", "constraints", "ops"]
