"""Models that pickle: through the ``.keras`` format in memory, as Keras 3 does.

``pickle.dumps(model)`` (and ``cloudpickle``, ``joblib``, ``copy.deepcopy``,
Dask sending a model to a worker) stores the bytes of the ``.keras`` archive
``model.save`` would write: architecture, weights, compile settings and the
optimizer's state (its step count and slots), so a model unpickled on another
machine predicts the same outputs and ``fit`` continues where it stopped.
Nothing of the model's Python objects is pickled, so a pickle never depends on
fastnn's private attributes, only on the file format.

One addition to the file: a loss or metric the ``.keras`` format can only name
(a user's own function or ``Loss`` subclass, which ``load_model`` refuses
since it never imports code a file names) and ``weighted_metrics`` (which
Keras's compile record cannot hold in fastnn) travel beside the archive as the
objects the user passed to ``compile``, pickled by reference as pickle always
does; the model is then compiled with them and the archive's optimizer state
is read back in.

Unpickling, like all unpickling, runs code: load pickles only from sources you
trust (the ``.keras`` file itself is the safe format).

Hook a model class in with one method (``fastnn.Model`` does, for all its subclasses)::

    def __reduce__(self):
        from ..saving.pickling import reduce_model
        return reduce_model(self)
"""
import io
import pickle

from .keras_format import load_model, load_weights, save_model


def reduce_model(model):
    """``model.__reduce__()``: ``(unpickle_model, (archive bytes, compile objects or None))``."""
    from ..models.functional import Functional
    from ..models.sequential import Sequential
    if not isinstance(model, (Sequential, Functional)):
        # A subclassed model's file needs its class at load time, which fastnn never imports
        # from a file: refuse here rather than write a pickle that cannot be loaded.
        raise pickle.PicklingError(f"{type(model).__name__} models cannot be pickled yet: pickling goes through "
                                   "the .keras format, which fastnn rebuilds for Sequential and functional models")
    buffer = io.BytesIO()
    save_model(model, buffer)
    return unpickle_model, (buffer.getvalue(), _compile_objects(model))


def unpickle_model(data, compile_objects=None):
    """The model whose ``.keras`` archive is ``data`` (bytes), compiled with
    its optimizer state; ``compile_objects`` (a dict of ``compile`` arguments
    other than the optimizer) when the archive alone cannot restore them."""
    if compile_objects is None:
        return load_model(io.BytesIO(data))
    from .. import optimizers
    model = load_model(io.BytesIO(data), compile=False)
    optimizer = optimizers.deserialize(compile_objects.pop("optimizer"))
    model.compile(optimizer=optimizer, **compile_objects)
    load_weights(model, io.BytesIO(data))   # the optimizer's state, now that it exists
    return model


def _compile_objects(model):
    """None when the archive's compile record restores ``model``'s compile
    settings exactly (built-in names and fastnn objects), else the ``compile``
    arguments to restore them with."""
    if not getattr(model, "compiled", False):
        return None
    loss = getattr(model, "_loss_arg", model.loss)
    metrics = getattr(model, "_metrics_arg", None)
    weighted = list(getattr(model, "_weighted_metric_ids", None) or [])
    listed = metrics if isinstance(metrics, (list, tuple)) else [] if metrics is None else [metrics]
    if not weighted and all(_restorable(arg) for arg in [loss, *listed]):
        return None
    return {"optimizer": model.get_compile_config()["optimizer"], "loss": loss, "metrics": metrics,
            "weighted_metrics": weighted or None}


def _restorable(arg):
    """True when a compile argument is a name or one of fastnn's own objects,
    which the compile record names and fastnn's registries look up again."""
    if isinstance(arg, str):
        return True
    owner = arg if isinstance(arg, type) or callable(arg) and not hasattr(arg, "get_config") else type(arg)
    return (getattr(owner, "__module__", None) or "").split(".")[0] == "fastnn"
