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
import zipfile

import h5py

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


def save_model(model, filepath, overwrite=True):
    """Writes ``model`` (architecture, weights, compile settings, optimizer
    state) to ``filepath``, which must end in ``.keras``."""
    path = _path(filepath)
    if not path.endswith(".keras"):
        hint = " (Keras's legacy .h5 model format is not supported)" if path.endswith(".h5") else ""
        raise ValueError(f"model.save needs a path ending in '.keras', got {path!r}{hint}; "
                         "use save_weights for a '.weights.h5' file")
    _check_overwrite(path, overwrite)
    config = json.dumps(model_record(model), allow_nan=False).encode()
    metadata = json.dumps(_metadata()).encode()
    weights = _weights_bytes(model)
    with atomic_write(path) as f:
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
    weights = _weights_bytes(model)
    with atomic_write(path) as f:
        f.write(weights)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in the ``.keras`` file ``filepath``; compiled (with
    its optimizer state) when the file records a compile configuration and
    ``compile`` is true. ``custom_objects`` ({name: class or function}) and
    classes registered with ``register_keras_serializable`` supply the user's
    own layers and losses the file names. ``safe_mode`` is accepted for Keras
    compatibility: fastnn never runs code from a file."""
    path = _path(filepath)
    with custom_object_scope(custom_objects):
        return _load_model(path, compile)


def _load_model(path, compile):
    from ..models.sequential import Sequential
    data = _read(path)
    with _refusing(path):
        if data.startswith(h5_weights.HDF5_SIGNATURE):
            raise ValueError("this is a weights file (HDF5), not a .keras model; build the model and "
                             "call model.load_weights on it")
        with _zip(data) as zf:
            record = _json_member(zf, _CONFIG)
            weights = _member(zf, _WEIGHTS)
        model = model_from_record(record, Sequential)
        with _h5(weights) as h5:
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
    the model as it was."""
    path = _path(filepath)
    data = _read(path)
    with _refusing(path):
        if data.startswith(_ZIP_SIGNATURE):
            with _zip(data) as zf:
                data = _member(zf, _WEIGHTS)
        elif not data.startswith(h5_weights.HDF5_SIGNATURE):
            raise ValueError("not a Keras weights file: expected an HDF5 '.weights.h5' file or a '.keras' archive")
        with _h5(data) as h5:
            assignments = h5_weights.read_layers(h5, model, skip_mismatch)
            state = h5_weights.read_optimizer(h5, model)
        h5_weights.assign(model, assignments, state)


def model_record(model):
    """The content of ``config.json`` for ``model``."""
    record = {"module": "keras", "class_name": "Sequential", "config": model.get_config(),
              "registered_name": None}
    if model.built:
        record["build_config"] = {"input_shape": [None, *model.input_shape[1:]]}
    record["compile_config"] = get_compile_config(model)
    return record


def model_from_record(record, sequential_cls):
    """The (uncompiled) model a ``config.json`` record describes."""
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError("config.json must hold a model record {'class_name', 'config', ...}")
    class_name, module = record.get("class_name"), record.get("module")
    if class_name != "Sequential":
        raise ValueError(f"fastnn loads Sequential models; this file holds a {class_name!r} model")
    if not (module is None or module == "keras" or (isinstance(module, str) and module.startswith("keras."))) \
            or record.get("registered_name") not in (None, "Sequential"):
        raise ValueError(f"the model's class comes from module {module!r} "
                         f"(registered as {record.get('registered_name')!r}), not Keras; fastnn loads "
                         "only its own classes")
    model = sequential_cls.from_config(record["config"])
    shape = (record.get("build_config") or {}).get("input_shape")
    if not model.built and isinstance(shape, list) and len(shape) >= 2:
        model.build(shape)
    return model


# -- helpers -------------------------------------------------------------------
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
    """The bytes of ``path`` (OSError when it cannot be read; ValueError when empty)."""
    with open(path, "rb") as f:
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
        raise ValueError(f"{name!r} is {info.file_size} bytes, more than a model config can be")
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
