"""Optimizers and learning-rate schedules with Keras 3's names, defaults and maths.

``fastnn.optimizers.Adam(learning_rate=1e-3)``, ``get("adam")``,
``schedules.ExponentialDecay(...)`` as ``learning_rate=``.
"""
from . import schedules
from .algorithms import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Ftrl, Lion, Nadam, RMSprop
from .base import Optimizer

_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad, "nadam": Nadam,
            "adamax": Adamax, "adadelta": Adadelta, "ftrl": Ftrl, "lion": Lion}
_BY_CLASS = {c.__name__: c for c in _BY_NAME.values()}

__all__ = ["Optimizer", "schedules", "get", "serialize", "deserialize", *_BY_CLASS]


def get(identifier):
    """Optimizer from a name ("adam"), a class name, a class, a serialized
    dict or an instance (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _BY_CLASS.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {sorted(_BY_NAME)}")
        return cls()
    raise ValueError(f"Could not interpret optimizer {identifier!r}")


def serialize(opt):
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(config):
    """An optimizer from ``serialize``'s dict (Keras's form, with "module", is read too)."""
    cls = _BY_CLASS.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown optimizer class {config.get('class_name')!r}; expected one of {sorted(_BY_CLASS)}")
    return cls.from_config(config.get("config", {}))


def __dir__():   # dir() shows the public names, not the submodules
    return __all__
