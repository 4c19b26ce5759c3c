"""fastnn: Keras-shaped neural networks trained by Numba-compiled loops.

``import fastnn as keras`` and write Keras code: ``keras.Sequential``,
``keras.layers.Dense``, ``model.compile``, ``model.fit``, ...
"""
from .config import _size_threads_from_environment
_size_threads_from_environment()     # the pool's size, before anything imports numba, which reads it once
from . import threads
threads.configure_waiting()     # before Numba starts its thread pool
from .kernels import prebuild
prebuild.start()     # a first run on this machine: a worker compiles the model-independent kernels meanwhile
from . import activations, callbacks, initializers, layers, losses, metrics, models, optimizers, utils
from . import regularizers
from . import backend, constraints, ops
from . import datasets, errors, preprocessing
from .layers import Input
from .models import Model, Sequential
from .utils import set_random_seed
from . import config
from .config import device

__version__ = "0.1.0"


def __getattr__(name):
    # fastnn.saving (and h5py, ~30 ms) and fastnn.wrappers (scikit-learn, ~0.5 s, optional)
    # are imported on first use, not with fastnn.
    if name in ("saving", "wrappers"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Model", "Sequential", "Input", "activations", "callbacks", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "utils", "set_random_seed", "datasets", "config", "device", "saving",
           "regularizers", "errors", "wrappers", "preprocessing", "backend",
           "constraints", "ops"]


def __dir__():   # dir() shows the public names, not the submodules
    return __all__
