"""A model's compile settings as Keras 3's ``compile_config``, and back.

Keras records the arguments of ``compile`` as given: the optimizer as its
record (with its current configuration), the loss and each metric as the
name the user wrote or the record of the object passed::

    {"optimizer": {...}, "loss": "mse", "loss_weights": None, "metrics": ["accuracy"],
     "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}

An uncompiled model has ``{}``. Reading looks every name up in fastnn's
registries (optimizers, losses, metrics) and nothing else.
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
    if isinstance(metrics_arg, (str, metrics_module.Metric, type)):
        metrics_arg = [metrics_arg]     # fastnn takes a bare metric; Keras records a list
    return {"optimizer": optimizers_module.serialize(model.optimizer),
            "loss": _record(loss_arg, losses_module),
            "loss_weights": None,
            "metrics": None if metrics_arg is None else [_record(m, metrics_module) for m in metrics_arg],
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _record(arg, module):
    """A compile argument as Keras records it: a name stays a name, an object becomes its record."""
    if isinstance(arg, str):
        return arg
    if isinstance(arg, type):
        arg = arg()
    return module.serialize(arg)


def compile_from_config(model, config):
    """Compiles ``model`` as ``config`` (a Keras compile_config) says.

    Raises ValueError for anything fastnn cannot honour exactly (several
    outputs' losses, loss weights, weighted metrics, unknown names)."""
    if not isinstance(config, dict):
        raise ValueError(f"compile_config must be a dict, got {type(config).__name__}")
    if not config:
        return
    loss = config.get("loss")
    if loss is None:
        warnings.warn("The file's compile_config has no loss; the model is returned uncompiled", stacklevel=3)
        return
    if isinstance(loss, list) or (isinstance(loss, dict) and "class_name" not in loss):
        raise ValueError(f"compile_config: one loss per model is supported, got {loss!r}")
    if config.get("loss_weights") not in (None, 1, 1.0, [1], [1.0]):
        raise ValueError(f"compile_config: loss_weights={config['loss_weights']!r} is not supported")
    if config.get("weighted_metrics") not in (None, []):
        raise ValueError("compile_config: weighted_metrics are not supported")
    metrics = config.get("metrics")
    if metrics is not None and not isinstance(metrics, list):
        raise ValueError(f"compile_config: metrics must be a list, got {type(metrics).__name__} "
                         "(per-output metrics are not supported)")
    optimizer = config.get("optimizer", "rmsprop")
    if not isinstance(optimizer, (str, dict)):
        raise ValueError(f"compile_config: optimizer must be a name or a record, got {type(optimizer).__name__}")
    model.compile(optimizer=optimizers_module.deserialize(optimizer),
                  loss=loss if isinstance(loss, str) else losses_module.deserialize(loss),
                  metrics=None if metrics is None else [metrics_module.deserialize(m) for m in metrics])
