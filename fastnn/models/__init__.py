"""Models: Model (functional and subclassed), Sequential, and the training engine;
``load_model`` reads Keras 3 ``.keras`` files; ``clone_model`` copies an architecture with new weights."""
from .model import Model
from .functional import Functional
from .sequential import Sequential
from .cloning import clone_model


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in a ``.keras`` file (Keras 3's format), compiled with its
    optimizer state when the file records a compile configuration; see
    ``fastnn.saving.load_model``."""
    from ..saving import load_model as load
    return load(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


__all__ = ["Model", "Functional", "Sequential", "load_model", "clone_model"]


def __dir__():   # dir() shows the public names, not the submodules
    return __all__
