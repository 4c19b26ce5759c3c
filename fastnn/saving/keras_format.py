"""Keras 3's files: the ``.keras`` archive and the ``.weights.h5`` file.

A ``.keras`` file is a zip archive (entries stored, not compressed) of

- ``metadata.json``: ``{"keras_version", "date_saved"}`` (fastnn adds ``"fastnn_version"``);
- ``config.json``: the model's record ``{"module": "keras", "class_name": "Sequential",
  "config": model.get_config(), "registered_name": None, "build_config": {...},
  "compile_config": {...}}``;
- ``model.weights.h5``: the HDF5 weight layout of ``h5_weights``.

A ``.weights.h5`` file is that HDF5 layout alone. Files fastnn writes have
Keras 3.15's layout, and Keras 3 loads them; fastnn loads what Keras 3
writes for every layer fastnn has.

Writes go through ``atomic.atomic_write``. Loading never unpickles and
never imports or calls anything a file names: classes and functions are
looked up by name in fastnn's registries. A file that is missing or cannot
be opened raises OSError naming it; one that is empty, truncated, corrupt
or of another format raises ValueError naming it.
"""
import contextlib
import datetime
import io
import json
import os
import stat
import zipfile

import h5py
import numpy as np

from ..layers.base import weight_mode
from . import h5_weights
from .atomic import atomic_write
from .compile_config import compile_from_config, get_compile_config
from .registration import custom_object_scope

# The Keras release whose file layout fastnn writes.
KERAS_FORMAT_VERSION = "3.15.1"
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
_ZIP_SIGNATURE = b"PK\x03\x04"
# JSON members are small; a larger one is not a model config (and is not read).
_MAX_JSON_BYTES = 64 << 20
# A compressed member that claims to expand more than this is refused (zip bomb).
_MAX_EXPANSION = 1000
# The weights member may be at most this large (zip's declared size, which also caps
# inflation): every parameter and up to 3 optimizer slots per parameter at 8 bytes (a
# float64 file), plus HDF5's own structures per variable, per layer and overall (about 1 KiB
# per dataset or group measured; 4 KiB allowed).
_MAX_SLOTS, _BYTES_PER_VALUE, _BYTES_PER_NODE, _BYTES_OVERALL = 3, 8, 4 << 10, 1 << 20


def save_model(model, filepath, overwrite=True):
    """Writes ``model`` (architecture, weights, compile settings, optimizer
    state) to ``filepath``, which must end in ``.keras``, or into a binary
    file object (e.g. ``io.BytesIO``; as Keras 3, used to pickle models)."""
    if _is_fileobj(filepath, "write"):
        _write_archive(model, filepath)
        return
    path = _path(filepath)
    if not path.endswith(".keras"):
        hint = " (Keras's legacy .h5 model format is not supported)" if path.endswith(".h5") else ""
        raise ValueError(f"model.save needs a path ending in '.keras', got {path!r}{hint}; "
                         "use save_weights for a '.weights.h5' file")
    _check_overwrite(path, overwrite)
    with atomic_write(path) as f:   # everything inside: Ctrl-C is held until the file is whole or gone
        _write_archive(model, f)


def _write_archive(model, f):
    config = json.dumps(model_record(model), allow_nan=False).encode()
    metadata = json.dumps(_metadata()).encode()
    weights = _weights_bytes(model)
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        with zf.open(_METADATA, "w") as member:
            member.write(metadata)
        with zf.open(_CONFIG, "w") as member:
            member.write(config)
        zf.writestr(_WEIGHTS, weights)


def save_weights(model, filepath, overwrite=True):
    """Writes the weights (and optimizer state when compiled) of ``model``
    to ``filepath``, which must end in ``.weights.h5``."""
    path = _path(filepath)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"save_weights needs a path ending in '.weights.h5', got {path!r}")
    _check_overwrite(path, overwrite)
    with atomic_write(path) as f:
        f.write(_weights_bytes(model))


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in the ``.keras`` file ``filepath``; compiled (with
    its optimizer state) when the file records a compile configuration and
    ``compile`` is true. ``filepath`` may also be a binary file object
    (``io.BytesIO``) holding a ``.keras`` archive. ``custom_objects`` ({name:
    class or function}) and classes registered with
    ``register_keras_serializable`` supply the user's own layers and losses
    the file names. ``safe_mode`` is accepted for Keras compatibility: fastnn
    never runs code from a file."""
    path, data = _source(filepath)
    with custom_object_scope(custom_objects):
        return _load_model(path, data, compile)


def _load_model(path, data, compile):
    with _refusing(path):
        if data.startswith(h5_weights.HDF5_SIGNATURE):
            raise ValueError("this is a weights file (HDF5), not a .keras model; build the model and "
                             "call model.load_weights on it")
        with _zip(data) as zf:
            record = _json_member(zf, _CONFIG)
            with weight_mode("probe"):   # the declared shapes, without allocating any weight
                n_params, n_nodes = _size(model_from_record(record, pack=False))
            weights = _member(zf, _WEIGHTS, _weights_limit(n_params, n_nodes))
        with _h5(weights) as h5:
            stored = _stored_values(h5)
            if n_params > stored:
                raise ValueError(f"the config declares {n_params:,} weights, but the weights file holds "
                                 f"{stored:,} values")
            with weight_mode("load"):    # the file's values replace the initial ones
                model = model_from_record(record)
            assignments = h5_weights.read_layers(h5, model)
            state = None
            if compile:
                try:
                    compile_from_config(model, record.get("compile_config") or {})
                except ValueError as e:
                    raise ValueError(f"{e} (load_model(..., compile=False) loads the model without its "
                                     "compile settings)") from e
                state = h5_weights.read_optimizer(h5, model)
        h5_weights.assign(model, assignments, state)
    return model


def load_weights(model, filepath, skip_mismatch=False):
    """Loads weights (and the optimizer state, when the model is compiled and
    the file has it) from a ``.weights.h5`` or ``.keras`` file into ``model``.
    Everything is checked before anything is written: a refused file leaves
    the model as it was. ``filepath`` may also be a binary file object."""
    path, data = _source(filepath)
    with _refusing(path):
        if data.startswith(_ZIP_SIGNATURE):
            with _zip(data) as zf:
                data = _member(zf, _WEIGHTS, _weights_limit(*_size(model)))
        elif not data.startswith(h5_weights.HDF5_SIGNATURE):
            raise ValueError("not a Keras weights file: expected an HDF5 '.weights.h5' file or a '.keras' archive")
        with _h5(data) as h5:
            assignments = h5_weights.read_layers(h5, model, skip_mismatch)
            state = h5_weights.read_optimizer(h5, model)
        h5_weights.assign(model, assignments, state)


def model_record(model):
    """The content of ``config.json`` for ``model``: Keras 3 records a
    Sequential as ``keras``/``Sequential`` with its input shape, a
    functional model as ``keras.src.models.functional``/``Functional`` with
    ``build_config`` ``{"input_shape": None}`` (its config holds the inputs)."""
    from ..models.functional import Functional
    from ..models.sequential import Sequential
    if isinstance(model, Sequential):
        record = {"module": "keras", "class_name": "Sequential", "config": model.get_config(),
                  "registered_name": None}
        if model.built:
            record["build_config"] = {"input_shape": [None, *model.input_shape[1:]]}
    elif isinstance(model, Functional) and type(model) is Functional:
        record = {"module": "keras.src.models.functional", "class_name": "Functional",
                  "config": model.get_config(), "registered_name": "Functional",
                  "build_config": {"input_shape": None}}
    else:
        raise NotImplementedError(
            f"Model {model.name!r} is a subclassed model ({type(model).__name__}): its architecture is Python code, "
            "which a .keras file cannot hold and fastnn never loads from a file. Save its weights with "
            "model.save_weights('name.weights.h5') and load them into a new instance with load_weights, or build "
            "the model with keras.Model(inputs, outputs) to save it whole")
    record["compile_config"] = get_compile_config(model)
    return record


# Keras's model classes fastnn rebuilds from a record: {class_name: registered names Keras writes}
_MODEL_CLASSES = {"Sequential": (None, "Sequential"), "Functional": (None, "Functional")}


def model_from_record(record, pack=True):
    """The (uncompiled) model a ``config.json`` record describes (a Sequential
    or functional model; nothing the record names is imported); with
    ``pack=False`` a Sequential's layers alone are built (no flat buffer):
    what a probe of its shapes needs (a functional model packs lazily)."""
    from ..models.functional import Functional
    from ..models.sequential import Sequential
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError("config.json must hold a model record {'class_name', 'config', ...}")
    class_name, module = record.get("class_name"), record.get("module")
    if class_name not in _MODEL_CLASSES:
        raise ValueError(f"fastnn loads Sequential and functional models; this file holds a {class_name!r} model "
                         "(a subclassed model's code cannot be loaded from a file: build the model and call "
                         "load_weights on it)")
    if not (module is None or module == "keras" or (isinstance(module, str) and module.startswith("keras."))) \
            or record.get("registered_name") not in _MODEL_CLASSES[class_name]:
        raise ValueError(f"the model's class comes from module {module!r} "
                         f"(registered as {record.get('registered_name')!r}), not Keras; fastnn loads "
                         "only its own classes")
    if class_name == "Sequential":
        if not pack:
            return _probe_layers(record["config"], (record.get("build_config") or {}).get("input_shape"))
        model = Sequential.from_config(record["config"])
        shape = (record.get("build_config") or {}).get("input_shape")
        if not model.built and isinstance(shape, list) and len(shape) >= 2:
            model.build(shape)
        return model
    return Functional.from_config(record["config"])


def _probe_layers(config, build_shape=None):
    """The layers of a Sequential config, built for its input shape (under
    ``weight_mode("probe")``: no weight memory), without a model around them."""
    from ..layers import InputLayer, deserialize
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("A Sequential config must be a dict with a 'layers' list")
    layers = [deserialize(r) for r in config["layers"]]
    shape = layers[0].shape if layers and isinstance(layers[0], InputLayer) else None
    layers = [layer for layer in layers if not isinstance(layer, InputLayer)]
    if shape is None and layers and layers[0]._input_shape_arg is not None:
        shape = layers[0]._input_shape_arg
    for given in (config.get("build_input_shape"), build_shape):
        if shape is None and isinstance(given, list) and len(given) >= 2:
            shape = tuple(given[1:])
    if shape is not None:
        for layer in layers:
            shape = layer.build_for(shape)
    return layers


# -- helpers -------------------------------------------------------------------
def _size(model):
    """(weights, Variables and layers) that a model or a list of built layers keeps in a file."""
    layers = model if isinstance(model, list) else model.layers
    variables = [v for layer in layers for v, _ in h5_weights.keras_variables(layer)]
    return sum(v.size for v in variables), len(variables) + len(layers)


def _weights_limit(n_params, n_nodes):
    """The most bytes the weights of a model of this size (``_size``) can take in Keras's HDF5 layout."""
    return (1 + _MAX_SLOTS) * (n_params * _BYTES_PER_VALUE + n_nodes * _BYTES_PER_NODE) + _BYTES_OVERALL


def _stored_values(h5):
    """How many values the layer weights in ``h5`` hold, read from the shapes alone."""
    total = 0
    layers = h5.get("layers", getlink=True)
    if layers is None:
        return 0
    if not isinstance(layers, h5py.HardLink) or not isinstance(h5["layers"], h5py.Group):
        raise ValueError("'layers' must be a group")

    def count(name, node):
        nonlocal total
        if isinstance(node, h5py.Dataset) and node.shape is not None:
            total += int(np.prod(node.shape, dtype=np.float64))
    h5["layers"].visititems(count)
    return total


def _is_fileobj(obj, method):
    return not isinstance(obj, (str, bytes, os.PathLike)) and callable(getattr(obj, method, None))


def _source(filepath):
    """(name for errors, bytes) of a path or a binary file object read from its position."""
    if _is_fileobj(filepath, "read"):
        data = filepath.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"the file object must be opened in binary mode, got {type(data).__name__}")
        if not data:
            raise ValueError("Cannot load from the file object: it is empty")
        return "<file object>", bytes(data)
    path = _path(filepath)
    return path, _read(path)


def _path(filepath):
    try:
        return os.fspath(filepath)
    except TypeError:
        raise TypeError(f"filepath must be a str or os.PathLike, got {type(filepath).__name__}") from None


def _check_overwrite(path, overwrite):
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")


def _metadata():
    from .. import __version__
    return {"keras_version": KERAS_FORMAT_VERSION,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "fastnn_version": __version__}


def _weights_bytes(model):
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5_weights.write(h5, model)
    return buffer.getvalue()


def _read(path):
    """The bytes of ``path`` (OSError when it cannot be read; ValueError when
    empty or not a regular file: a device or a pipe could be read forever)."""
    mode = os.stat(path).st_mode if os.path.exists(path) else 0
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):    # a directory: open's IsADirectoryError
        raise ValueError(f"Cannot load {path!r}: not a regular file")
    with open(path, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):    # replaced since the check above
            raise ValueError(f"Cannot load {path!r}: not a regular file")
        data = f.read()
    if not data:
        raise ValueError(f"Cannot load {path!r}: the file is empty")
    return data


@contextlib.contextmanager
def _refusing(path):
    """Turns any failure while reading a file's content into ValueError naming the file."""
    try:
        yield
    except Exception as e:
        raise ValueError(f"Cannot load {path!r}: {e}") from e


def _zip(data):
    if not data.startswith(_ZIP_SIGNATURE):
        raise ValueError("not a .keras file (a .keras file is a zip archive)")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ValueError(f"a damaged or truncated .keras archive ({e})") from None


def _member(zf, name, limit=None):
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ValueError(f"not a .keras file: the archive has no {name!r} "
                         f"(it holds {zf.namelist()[:10]})") from None
    if limit is not None and info.file_size > limit:
        raise ValueError(f"{name!r} is {info.file_size:,} bytes, more than this model can take "
                         f"({limit:,} bytes at most)")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > _MAX_EXPANSION * max(info.compress_size, 1):
        raise ValueError(f"{name!r} claims to expand {info.compress_size} bytes to {info.file_size}")
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(f"{name!r} in the archive is damaged ({e})") from None


def _json_member(zf, name):
    text = _member(zf, name, _MAX_JSON_BYTES)
    try:
        return json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{name!r} is not valid JSON ({e})") from None


def _h5(data):
    if not data.startswith(h5_weights.HDF5_SIGNATURE):
        raise ValueError("the weights are not an HDF5 file")
    try:
        return h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise ValueError(f"damaged or truncated HDF5 weights ({e})") from None
