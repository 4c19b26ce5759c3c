"""A model's compile settings as Keras 3's ``compile_config``, and back.

Keras records the arguments of ``compile`` as given: the optimizer as its
record (with its current configuration), the loss and each metric as the
name the user wrote or the record of the object passed::

    {"optimizer": {"module": "keras.optimizers", "class_name": "Adam", "config": {...},
                   "registered_name": None},
     "loss": "mse", "loss_weights": None, "metrics": ["accuracy"], "weighted_metrics": None,
     "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}

fastnn's loss functions (``fastnn.losses.mse``...) are recorded by their
Keras name; another function as Keras 3.15 records one, ``{"module":
"builtins", "class_name": "function", "config": name, "registered_name":
"function"}`` (Keras looks a "builtins" function up by ``config``, among its
own functions and the custom objects). An uncompiled model has ``{}``.
Reading looks every name up in fastnn's registries (optimizers, losses,
metrics) and nothing else.
"""
import warnings

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module


def get_compile_config(model):
    """Keras 3's compile_config for ``model`` ({} when it is not compiled)."""
    if not model.compiled:
        return {}
    loss_arg = getattr(model, "_loss_arg", model.loss)
    metrics_arg = getattr(model, "_metrics_arg", model._metric_ids or None)
    loss_weights = model._loss_spec[1] if getattr(model, "_loss_spec", None) else None
    if isinstance(metrics_arg, (str, metrics_module.Metric, type)) or \
            (callable(metrics_arg) and not isinstance(metrics_arg, (list, tuple))):
        metrics_arg = [metrics_arg]     # fastnn takes a bare metric; Keras records a list
    # Several outputs: Keras records the structures as given (tuples as lists), each entry as one argument.
    return {"optimizer": _record(model.optimizer, "keras.optimizers"),
            "loss": _per_output(loss_arg, lambda a: _record(a, "keras.losses")),
            "loss_weights": _per_output(loss_weights, float),
            "metrics": _per_output(metrics_arg, lambda m: _record(m, "keras.metrics")),
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _per_output(value, fn):
    """``fn`` on each entry of a (nested) list/tuple/dict compile argument;
    None stays None, and a dict with a ``class_name`` is a record, one entry."""
    if value is None:
        return None
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _per_output(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_per_output(v, fn) for v in value]
    return fn(value)


def _record(arg, module):
    """A compile argument as Keras records it: a name stays a name, an object
    becomes its record, a function its name's record."""
    if isinstance(arg, str):
        return arg
    if getattr(arg, "loss_class", None) is not None:
        return arg.__name__     # fastnn.losses.mse & co: Keras's own function of that name
    if isinstance(arg, type):
        arg = arg()
    if hasattr(arg, "get_config"):
        return {"module": module, "class_name": type(arg).__name__, "config": arg.get_config(),
                "registered_name": None}
    return {"module": "builtins", "class_name": "function", "config": getattr(arg, "__name__", repr(arg)),
            "registered_name": "function"}


def compile_from_config(model, config):
    """Compiles ``model`` as ``config`` (a Keras compile_config) says.

    ``loss``, ``loss_weights`` and ``metrics`` may be per output (lists,
    lists of lists, dicts by output name), as Keras records them for a
    model of several outputs. Raises ValueError for anything fastnn cannot
    honour exactly (weighted metrics, unknown names)."""
    if not isinstance(config, dict):
        raise ValueError(f"compile_config must be a dict, got {type(config).__name__}")
    if not config:
        return
    loss = config.get("loss")
    if loss is None:
        warnings.warn("The file's compile_config has no loss; the model is returned uncompiled", stacklevel=3)
        return
    if config.get("weighted_metrics") not in (None, []):
        raise ValueError("compile_config: weighted_metrics are not supported")
    loss_weights = config.get("loss_weights")
    if not (loss_weights is None or isinstance(loss_weights, (int, float, list, dict))):
        raise ValueError(f"compile_config: loss_weights must be a number, a list or a dict, got {loss_weights!r:.80}")
    metrics = config.get("metrics")
    if metrics is not None and not isinstance(metrics, (list, dict)):
        raise ValueError(f"compile_config: metrics must be a list or a dict, got {type(metrics).__name__}")
    # compile checks the structures against the model's outputs (and the weights are numbers)
    model.compile(optimizer=_object(config.get("optimizer", "rmsprop"), optimizers_module, "optimizer"),
                  loss=_per_output(loss, lambda r: _object(r, losses_module, "loss")),
                  loss_weights=loss_weights,
                  metrics=_per_output(metrics, lambda r: _object(r, metrics_module, "metric")))


def _own(name):
    """The user's object offered for ``name`` (load_model's custom_objects, a registration), else the name."""
    from .registration import get_registered_object
    own = get_registered_object(name)
    return name if own is None else own


def _object(record, module, what):
    """What ``compile`` takes for a recorded argument: a name stays a name (the
    registry resolves it in ``compile``), a function's record gives its name, a
    class record the object ``module.deserialize`` builds from fastnn's registry."""
    if isinstance(record, str):
        return _own(record)
    if not isinstance(record, dict) or not isinstance(record.get("class_name"), str):
        raise ValueError(f"compile_config: the {what} must be a name or a record with a 'class_name', "
                         f"got {record!r:.80}")
    if record["class_name"] == "function":
        if not isinstance(record.get("config"), str):
            raise ValueError(f"compile_config: a {what} function's record must name it, got {record!r:.80}")
        return _own(record["config"])
    if not isinstance(record.get("config", {}), dict):
        raise ValueError(f"compile_config: the {what} record's 'config' must be a dict")
    return module.deserialize(record)
