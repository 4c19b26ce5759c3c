"""Saving and loading in Keras 3's formats: ``.keras`` archives and ``.weights.h5`` files.

``save_model(model, "m.keras")`` / ``load_model("m.keras")`` keep the
architecture, weights, compile settings and optimizer state;
``save_weights`` / ``load_weights`` the weights and optimizer state. Files
move both ways between fastnn and Keras 3. Writes are atomic (temporary
file, then rename); loading runs no code from the file.
"""
from .keras_format import load_model, load_weights, save_model, save_weights
from .registration import (CustomObjectScope, custom_object_scope, get_registered_name, get_registered_object,
                           register_keras_serializable)

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "register_keras_serializable",
           "custom_object_scope", "CustomObjectScope", "get_registered_name", "get_registered_object"]


def __dir__():   # dir() shows the public names, not the submodules
    return __all__
