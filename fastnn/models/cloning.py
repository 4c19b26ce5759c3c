"""``clone_model``: the same architecture with new weights, as Keras 3's.

Written against the public model API only (``get_config`` / ``from_config``,
``get_compile_config`` / ``compile_from_config``), so it serves every model
class that has them, not just ``Sequential``.
"""


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    """A new model with ``model``'s architecture and newly initialized weights.

    As Keras 3: the layers are rebuilt from their configs (so no weight is
    shared and the initializers draw again from fastnn's generator:
    ``keras.utils.set_random_seed`` makes the clone reproducible), and a
    compiled ``model`` gives a clone compiled with the same settings (a new
    optimizer with the same configuration and no state).

    ``clone_function(layer) -> layer`` replaces the default per-layer copy
    (``layer.__class__.from_config(layer.get_config())``); it is supported for
    models with a ``layers`` list built as a chain (``Sequential``).
    ``input_tensors``, ``call_function`` and ``recursive`` are accepted for
    Keras's signature; fastnn has no symbolic tensors to rebuild a model on,
    so a value other than the default raises ``NotImplementedError``.

    To copy the weights too: ``clone.set_weights(model.get_weights())``.
    """
    if kwargs:
        raise ValueError(f"clone_model got unexpected arguments {sorted(kwargs)}")
    for name, value in (("input_tensors", input_tensors), ("call_function", call_function)):
        if value is not None:
            raise NotImplementedError(f"clone_model({name}=...) is not supported by fastnn")
    if recursive:
        raise NotImplementedError("clone_model(recursive=True) is not supported by fastnn (models do not nest)")
    if not (hasattr(model, "get_config") and hasattr(model, "compile")):
        raise TypeError(f"clone_model expects a fastnn model, got {type(model).__name__}")
    if not hasattr(type(model), "from_config"):
        raise NotImplementedError(f"clone_model rebuilds a model from its config, and {type(model).__name__} has "
                                  "no from_config; with the scikit-learn wrappers, pass a function that builds "
                                  "the model instead")
    if clone_function is None:
        clone = type(model).from_config(model.get_config())
    else:
        clone = _clone_chain(model, clone_function)
    if getattr(model, "compiled", False):
        _compile_like(clone, model)
    return clone


def _clone_chain(model, clone_function):
    from .sequential import Sequential
    if not callable(clone_function):
        raise ValueError(f"clone_function must be a callable fn(layer) -> layer, got {clone_function!r}")
    if not isinstance(model, Sequential):
        raise NotImplementedError(f"clone_model(clone_function=...) supports Sequential models, "
                                  f"not {type(model).__name__}")
    from ..layers import Input
    clone = Sequential(name=model.name)
    if model.input_shape is not None:
        clone.add(Input(shape=model.input_shape[1:]))
    for layer in model.layers:
        clone.add(clone_function(layer))
    return clone


def _compile_like(clone, model):
    """Compiles ``clone`` as ``model`` was compiled, through Keras's compile record.

    A loss or metric the record can only name (a user's own function or
    class) is refused by ``compile_from_config``, which never imports code;
    then the objects the user gave ``compile`` are reused (they hold no
    per-model state). ``weighted_metrics``, which the record does not hold in
    fastnn, are passed on as given. The optimizer is always a new one of the
    same configuration."""
    from .. import optimizers
    config = model.get_compile_config()
    weighted = list(getattr(model, "_weighted_metric_ids", None) or []) or None
    try:
        clone.compile_from_config(config)
        if weighted is None:
            return
    except ValueError:
        pass
    clone.compile(optimizer=optimizers.get(config["optimizer"]), loss=getattr(model, "_loss_arg", model.loss),
                  metrics=getattr(model, "_metrics_arg", None), weighted_metrics=weighted)
