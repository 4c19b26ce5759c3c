"""Keras 3's HDF5 weight layout, written from and read into a fastnn model.

The same layout is a ``.weights.h5`` file and the ``model.weights.h5`` member
of a ``.keras`` archive::

    vars                          empty group, attribute name = the model's name
    layers/<path>/vars/0, 1, ...  one layer's variables in Keras's order
    optimizer/vars/0              iterations, int64 scalar
    optimizer/vars/1              learning rate, float32 scalar (none for a schedule)
    optimizer/vars/2, ...         slots: for each of the optimizer's slot groups
                                  (``optimizer_layout``), for each trainable
                                  variable, one array per slot (Adam: m0, v0, m1, v1, ...)

``<path>`` is the layer's class name in snake case, numbered ``_1``, ``_2``
among layers of the same class (``dense``, ``dense_1``): Keras addresses
layers by position and class, not by their names (a subclassed model's
layers by attribute name: ``model_layer_paths``). Each ``vars`` group
carries the owner's name as an attribute. Arrays are plain contiguous
datasets. fastnn keeps an optimizer's slots as rows of one array over the
flat trainable buffer; this module maps them to and from Keras's
per-variable arrays.

Reading trusts nothing in the file: only hard-linked groups and datasets are
followed (no external or soft links, no external or virtual storage, no
filters beyond deflate/shuffle/fletcher32, so HDF5 never loads a plugin), a
dataset's shape and dtype are checked against what the model expects before
anything is read, values must be finite, and everything is read and checked
before any weight changes.
"""
import copy
import re
import warnings

import h5py
import numpy as np

from ..utils.numbers import all_fit_float32
from .optimizer_layout import has_learning_rate_variable, slot_groups, trailing_scalars

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Filters built into HDF5: reading them loads no plugin.
_SAFE_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32}
# Variables Keras stores as integers: {(layer class, variable name)}.
_INT_VARIABLES = {("Normalization", "count")}
# The most optimizer steps a file may record: far beyond any training, and int64 step
# counts (the kernels', the next file's) cannot wrap from there.
MAX_ITERATIONS = 2**62


def keras_snake_case(name):
    """Keras's ``naming.to_snake_case`` (``Dense`` -> ``dense``, ``LeakyReLU`` -> ``leaky_re_lu``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_paths(layers):
    """Keras's HDF5 group path of each layer of a Sequential, in order."""
    used, paths = {}, []
    for layer in layers:
        name = keras_snake_case(type(layer).__name__)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        paths.append(f"layers/{name}")
    return paths


def model_layer_paths(model):
    """(layer, HDF5 group path) for each layer whose variables Keras saves for ``model``, in the order
    Keras's ``saving_lib`` visits them.

    Keras walks the model object: a Sequential or functional model's
    ``layers`` list (numbered by class, InputLayers included for a
    functional model, a shared layer once), then the model's attributes in
    sorted name order (private ones last), which for these models hold no
    other layers. A subclassed model's layers are
    its attributes: each is saved under the attribute's name, and the
    ``layers`` attribute (every tracked layer, in assignment order) comes in
    its sorted place, numbering all of them by class but saving only those
    not saved yet (``hidden1``, ``hidden2``, ``layers/dense_2``...). A layer
    is saved once, where the walk first meets it."""
    from ..models.functional import Functional
    from ..models.sequential import Sequential
    from ..layers.base import Layer
    seen, out = set(), []

    def visit(layer, path):
        if id(layer) not in seen:
            seen.add(id(layer))
            out.append((layer, path))

    def container(layers):
        for layer, path in zip(layers, layer_paths(layers)):
            visit(layer, path)

    if isinstance(model, (Sequential, Functional)):
        container(model.layers)     # (fastnn's own attributes hold no other layers)
        return out
    attributes = {k: v for k, v in vars(model).items() if isinstance(v, Layer) and not k.startswith("__")}
    attributes["layers"] = None
    for name in sorted(attributes, key=lambda k: "~" + k if k.startswith("_") else k):
        if name == "layers":
            container(model.layers)
        else:
            visit(attributes[name], name)
    return out


def keras_variables(layer):
    """The Variables Keras keeps for ``layer``, in Keras's order (trainable
    ones first, each in creation order), with the dtype Keras stores them as."""
    if type(layer).__name__ == "Normalization" and layer.get_config().get("mean") is not None:
        return []   # Keras holds a given mean and variance as constants, not variables
    weights = layer.weights
    ordered = [v for v in weights if v.trainable] + [v for v in weights if not v.trainable]
    cls = type(layer).__name__
    return [(v, np.int64 if (cls, v.name.rsplit("/", 1)[-1]) in _INT_VARIABLES else np.float32)
            for v in ordered]


def weight_groups(layer, path):
    """Where Keras keeps ``layer``'s variables: [(group path, owner name, [(Variable, dtype)])].
    One ``<path>/vars`` group, except for layers whose weights Keras holds in
    inner layers (``keras_weight_groups``: an LSTM's cell, a Bidirectional's
    two layers, a TimeDistributed's layer)."""
    groups = getattr(layer, "keras_weight_groups", None)
    if groups is None:
        return [(path, layer.name, keras_variables(layer))]
    return [(path + sub, name, [(v, np.float32) for v in variables]) for sub, name, variables in groups()]


# -- writing -----------------------------------------------------------------
def write(h5, model):
    """Writes ``model``'s layer variables and, when compiled, its optimizer state into ``h5``."""
    h5.create_group("vars").attrs["name"] = model.name
    saved = model_layer_paths(model)
    _check_every_weight_is_saved(model, saved)
    for layer, path in saved:
        for where, name, variables in weight_groups(layer, path):
            group = h5.require_group(where).create_group("vars")
            group.attrs["name"] = name
            for i, (var, dtype) in enumerate(variables):
                value = np.rint(var.value).astype(dtype) if dtype is np.int64 else var.numpy()
                group[str(i)] = value
    if model.compiled and model.optimizer is not None:
        group = h5.create_group("optimizer").create_group("vars")
        group.attrs["name"] = model.optimizer.name
        for i, value in enumerate(_optimizer_arrays(model)):
            group[str(i)] = value


def _check_every_weight_is_saved(model, saved):
    """Refuses to write a file that would silently lose weights: a subclassed
    model's layer that holds weights but is not an attribute of the model."""
    if not model.built:
        return
    ids = {id(layer) for layer, _ in saved}
    lost = [l.name for l in model._weight_layers() if l.weights and id(l) not in ids]
    if lost:
        raise ValueError(f"Layers {lost} of model {model.name!r} hold weights but are not attributes of the model, "
                         "so Keras's file layout has no place for them; assign them in __init__ "
                         "(self.dense = keras.layers.Dense(...))")


def _optimizer_arrays(model):
    """Keras's list of optimizer variables for fastnn's optimizer state."""
    opt = model.optimizer
    groups = slot_groups(opt)      # refuses an optimizer whose layout is unknown, even before it is built
    slots = _built_slots(model)
    arrays = [np.array(opt.iterations if slots is not None else 0, dtype=np.int64)]
    if has_learning_rate_variable(opt):
        arrays.append(np.array(opt.learning_rate, dtype=np.float32))
    if slots is None:
        return arrays   # as Keras writes an optimizer that has not been built yet
    for group in groups:
        for var, lo in _trainable_offsets(model):
            for row in group:
                arrays.append(slots[row, lo:lo + var.size].reshape(var.shape).copy())
    return arrays + [np.array(v, dtype=np.float32) for v in trailing_scalars(opt)]


def _built_slots(model):
    """The optimizer's slots if they belong to the model's current trainable layout, else None."""
    opt = model.optimizer
    if not model.built or opt.slots is None:
        return None
    model._pack()   # the slots match the buffer only if it is packed for the current layers
    return opt.slots if opt.slots.shape[1] == model._n_trainable else None


def _trainable_offsets(model):
    """(Variable, element offset in the flat buffer) for each trainable variable, in Keras's order."""
    model._pack()
    base = model._params.__array_interface__["data"][0]
    out = []
    for var in model.trainable_weights:
        lo = (var.value.__array_interface__["data"][0] - base) // var.value.itemsize
        if not 0 <= lo <= model._n_trainable - var.size:
            raise RuntimeError(f"Variable {var.name!r} is not in the trainable part of the flat buffer")
        out.append((var, lo))
    return out


# -- reading -----------------------------------------------------------------
def read_layers(h5, model, skip_mismatch=False):
    """Reads and checks every layer's variables; returns [(Variable, float32 array)] to assign.

    Raises ValueError naming the layer when the file lacks a layer's weights,
    holds a different number or shape of arrays, or holds weights for layers
    the model does not have. With ``skip_mismatch`` a mismatched layer is
    skipped with a warning instead."""
    if not model.built:
        if any(len(_group(h5, f"{path}/vars") or ()) for path in _stored_layer_paths(h5)):
            raise ValueError("The model is not built, so it has no weights to load into; give it an Input "
                             "layer (or call model.build(input_shape), or call it on data) first")
        return []
    saved = model_layer_paths(model)
    paths = [path for _, path in saved]
    assignments = []
    for layer, path in saved:
        try:
            assignments += _read_layer(h5, layer, path)
        except ValueError as e:
            if not skip_mismatch:
                raise
            warnings.warn(f"Skipping layer {layer.name!r}: {e}", stacklevel=3)
    extra = sorted(p for p in _stored_layer_paths(h5) if p not in paths and len(_group(h5, f"{p}/vars") or ()) > 0)
    if extra and not skip_mismatch:
        raise ValueError(f"The file holds weights for layers the model does not have: {extra} "
                         f"(the model's layers are at {paths})")
    return assignments


def _stored_layer_paths(h5):
    """The layer groups of a Keras weights file: ``layers/<k>`` and, for a
    subclassed model, the top-level attribute groups."""
    out = []
    for key in h5.keys():
        if key in ("vars", "optimizer"):
            continue
        if key == "layers":
            group = _group(h5, "layers")
            out += [f"layers/{k}" for k in group.keys()]
        else:
            out.append(key)
    return out


def _read_layer(h5, layer, path):
    out = []
    for where, _, expected in weight_groups(layer, path):
        out += _read_group(h5, layer, where, expected)
    return out


def _read_group(h5, layer, path, expected):
    group = _group(h5, f"{path}/vars")
    keys = sorted(group.keys()) if group is not None else []
    if len(keys) != len(expected) or keys != sorted(str(i) for i in range(len(expected))):
        names = [v.name.rsplit("/", 1)[-1] for v, _ in expected]
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}, at {path!r}) has {len(expected)} "
                         f"weight arrays {names}; the file holds {len(keys)} there")
    out = []
    for i, (var, _) in enumerate(expected):
        value = _dataset(group, str(i), var.shape, f"layer {layer.name!r} weight {var.name!r}")
        out.append((var, value.astype(np.float32)))
    return out


def read_optimizer(h5, model):
    """The optimizer state stored in ``h5`` for ``model``'s optimizer, checked, or None.

    Returns ``(iterations, learning_rate, slots)``: ``slots`` a new float32
    array shaped like the optimizer's, ``learning_rate`` None for a schedule.
    Returns None when there is nothing to load: no optimizer in the file, an
    uncompiled model, or an optimizer the file saved before it was built
    going into one not built either (both fresh). When the file's optimizer
    has another number of variables (another optimizer class, or another
    model), warns and returns None, as Keras does."""
    group = _group(h5, "optimizer/vars")
    if group is None or not model.compiled or model.optimizer is None:
        return None
    opt = model.optimizer
    keys = sorted(group.keys(), key=lambda k: (len(k), k))
    n = len(keys)
    if keys != [str(i) for i in range(n)]:
        raise ValueError(f"The optimizer's variables in the file are not numbered 0..n-1: {keys[:10]}")
    trainable = _trainable_offsets(model)
    groups = slot_groups(opt)
    first_slot = 2 if has_learning_rate_variable(opt) else 1
    n_trailing = len(trailing_scalars(opt))
    expected = first_slot + len(trainable) * sum(len(g) for g in groups) + n_trailing
    if n != expected:
        if n == first_slot and _built_slots(model) is None:
            return None
        warnings.warn(f"Skipping the optimizer state in the file: it holds {n} variables, while "
                      f"{type(opt).__name__} {opt.name!r} for this model has {expected}", stacklevel=3)
        return None
    iterations = _dataset(group, "0", (), "optimizer iterations", kinds="iu")
    if not 0 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"The optimizer's iterations ({int(iterations)}) are outside [0, 2**62]")
    lr = None
    if first_slot == 2:
        lr = _dataset(group, "1", (), "optimizer learning rate", kinds="f")
        if lr < 0:
            raise ValueError(f"The optimizer's learning rate is negative: {float(lr)}")
        lr = float(lr)
    fresh = copy.copy(opt)
    fresh.slots = None
    fresh.build(model._n_trainable)
    slots, k = fresh.slots, first_slot
    for g in groups:
        for var, lo in trainable:
            for row in g:
                value = _dataset(group, str(k), var.shape, f"optimizer slot {k} (for {var.name!r})")
                slots[row, lo:lo + var.size] = value.reshape(-1)
                k += 1
    for _ in range(n_trailing):     # checked, then recomputed from the iterations (Nadam's u_product)
        _dataset(group, str(k), (), f"optimizer variable {k}", kinds="f")
        k += 1
    return int(iterations), lr, slots


def assign(model, assignments, optimizer_state):
    """Writes what ``read_layers`` and ``read_optimizer`` returned into the model."""
    for var, value in assignments:
        var.value[...] = value
    if optimizer_state is not None:
        opt = model.optimizer
        iterations, lr, slots = optimizer_state
        if lr is not None:
            opt.learning_rate = lr
        opt.slots = slots
        opt.iterations = iterations
        model._optimizer_layout = model._layout   # these slots belong to the buffer as packed now


def _group(h5, path):
    """The group at ``path`` following hard links only; None when absent."""
    node = h5
    for part in path.split("/"):
        if part not in node:
            return None
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{path!r} is a {type(link).__name__}; only hard links are allowed")
        node = node[part]
        if not isinstance(node, h5py.Group):
            raise ValueError(f"{path!r} must be a group, found a {type(node).__name__}")
    return node


def _dataset(group, key, shape, what, kinds="fiu"):
    """Reads dataset ``key`` of ``group`` after checking link, storage, dtype and shape."""
    link = group.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise ValueError(f"{what}: a {type(link).__name__}; only hard links are allowed")
    ds = group[key]
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"{what}: expected a dataset, found a {type(ds).__name__}")
    if ds.external or ds.is_virtual:
        raise ValueError(f"{what}: external or virtual storage is not allowed")
    plist = ds.id.get_create_plist()
    filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
    if filters - _SAFE_FILTERS:
        raise ValueError(f"{what}: HDF5 filters {sorted(filters - _SAFE_FILTERS)} are not allowed")
    if ds.dtype.kind not in kinds or ds.dtype.itemsize > 8 or ds.dtype.fields is not None:
        raise ValueError(f"{what}: dtype {ds.dtype} is not a real number type")
    if ds.shape != tuple(shape):
        raise ValueError(f"{what}: shape {ds.shape} in the file, the model needs {tuple(shape)}")
    value = np.asarray(ds[()])
    if value.dtype.kind == "f" and not all_fit_float32(value):
        raise ValueError(f"{what}: contains NaN or inf (after conversion to float32, the weights' type)")
    return value
