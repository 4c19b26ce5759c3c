"""Keras-shaped layers: shapes, configuration and weights (maths in kernels/)."""
from .activations import LeakyReLU
from .base import Layer, Variable
from .convolutional import Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D
from .core import Activation, Dense, Flatten, Input, InputLayer, Reshape
from .merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average, concatenate,
                      maximum, minimum, multiply, subtract)
from .normalization import BatchNormalization
from .preprocessing import Normalization, Rescaling
from .pooling import (AveragePooling1D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling1D,
                      MaxPooling2D)
from .regularization import Dropout, SpatialDropout2D
from .reshaping import Cropping2D, UpSampling2D, ZeroPadding2D
from .embedding import Embedding
from .global_pooling1d import GlobalAveragePooling1D, GlobalMaxPooling1D
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from .time_distributed import TimeDistributed

_BY_CLASS = {c.__name__: c for c in (InputLayer, Dense, Flatten, Reshape, Activation, Normalization,
                                     Rescaling, Dropout, BatchNormalization, LeakyReLU, Concatenate, Add,
                                     Subtract, Multiply, Average, Maximum, Minimum,
                                     Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling1D, MaxPooling2D,
                                     AveragePooling1D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D,
                                     ZeroPadding2D, Cropping2D, UpSampling2D, SpatialDropout2D, Embedding, SimpleRNN,
                                     LSTM, GRU, Bidirectional, TimeDistributed, GlobalAveragePooling1D,
                                     GlobalMaxPooling1D)}


def get_class(name):
    """The layer class registered under ``name`` (never imports anything)."""
    cls = _BY_CLASS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"Unknown layer class {name!r}; fastnn has {sorted(_BY_CLASS)}")
    return cls


def serialize(layer):
    """Keras 3's record of a layer: ``{"module", "class_name", "config", "registered_name"}``,
    plus ``"build_config"`` for a built layer of a class whose build Keras records."""
    cls = type(layer)
    if _BY_CLASS.get(cls.__name__) is cls:
        record = {"module": "keras.layers", "class_name": cls.__name__, "config": layer.get_config(),
                  "registered_name": None}
    else:       # a user's class: recorded as Keras 3 does; loading needs it registered or in custom_objects
        from ..saving.registration import get_registered_name
        registered = get_registered_name(cls)
        record = {"module": None if ">" in registered else cls.__module__, "class_name": cls.__name__,
                  "config": layer.get_config(), "registered_name": registered}
    if layer.built and layer.keras_build_config:
        record["build_config"] = layer.get_build_config()
    return record


def deserialize(record):
    """The layer a Keras (or fastnn) layer record describes.

    The class is looked up by name in fastnn's own registry, or for a user's
    class among the custom objects the process offers (``load_model``'s
    ``custom_objects``, ``register_keras_serializable``); nothing named by
    the record is imported. A record of any other class raises ValueError
    naming the layer."""
    if not isinstance(record, dict) or not isinstance(record.get("class_name"), str):
        raise ValueError(f"A layer record must be a dict with a 'class_name' string, got {_short(record)}")
    class_name = record["class_name"]
    config = record.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"Layer record of class {class_name!r}: 'config' must be a dict, got {_short(config)}")
    name = config.get("name")
    module = record.get("module")
    registered = record.get("registered_name")
    from ..saving.registration import lookup
    own = lookup(class_name, registered) if class_name not in _BY_CLASS or registered not in (None, class_name) \
        else None
    if own is not None:
        if not (isinstance(own, type) and issubclass(own, Layer)):
            raise ValueError(f"Layer {name!r}: the custom object for {class_name!r} is {own!r}, not a Layer class")
        return own.from_config(config)
    if not (module is None or module == "keras" or (isinstance(module, str) and module.startswith("keras."))) \
            or registered not in (None, class_name):
        raise ValueError(f"Layer {name!r} is of class {class_name!r} from module {module!r} "
                         f"(registered as {registered!r}), which is not a Keras built-in layer; pass the class in "
                         "load_model(..., custom_objects={...}) or register it with "
                         "keras.saving.register_keras_serializable (fastnn never imports code named by a file)")
    if class_name not in _BY_CLASS:
        raise ValueError(f"Layer {name!r} is a {class_name!r}, which fastnn does not have (a class of yours: pass "
                         "it in custom_objects or register it); "
                         f"fastnn's layers are {sorted(_BY_CLASS)}")
    return _BY_CLASS[class_name].from_config(config)


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = sorted(_BY_CLASS) + ["Input", "Layer", "Variable", "add", "average", "concatenate", "maximum", "minimum",
                               "multiply", "subtract", "deserialize", "get_class", "serialize"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
