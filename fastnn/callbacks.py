"""Callbacks with Keras's hooks. ``fit`` always adds a ``History``."""
import os
import warnings


class Callback:
    """Override any hook. Batch hooks are only called for callbacks that
    define them, so the compiled loop runs whole chunks otherwise."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass


def wants_batch_hooks(callback):
    """True when ``callback`` overrides a per-batch hook."""
    cls = type(callback)
    return any(getattr(cls, h) is not getattr(Callback, h) for h in ("on_train_batch_begin", "on_train_batch_end"))


class History(Callback):
    """``history.history`` maps each log key to its per-epoch list of floats."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class CallbackList:
    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for c in self.callbacks:
            c.set_model(model)
            c.set_params(params)
        self.batch_level = any(wants_batch_hooks(c) for c in self.callbacks)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for c in self.callbacks:
                getattr(c, hook)(*args, **kwargs)
        return call


class ModelCheckpoint(Callback):
    """Saves the model (``.keras``) or its weights (``.weights.h5``) at the end of each epoch.

    ``filepath`` may hold ``{epoch}`` (from 1) and any log key with a format,
    e.g. ``"ckpt/e{epoch:02d}-{val_loss:.2f}.keras"``; missing directories are
    created. With ``save_best_only`` the model is saved only when ``monitor``
    improves on the best value so far (the first value always does, or
    ``initial_value_threshold`` must be beaten); ``mode`` "min"/"max", or
    "auto": minimise losses, follow the metric's direction otherwise
    (accuracies up, errors down). Writes are atomic, so an interrupted save
    never leaves a partial file under the checkpoint's name. Saving happens
    per epoch only (``save_freq="epoch"``), which keeps training in compiled
    chunks."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        suffix = ".weights.h5" if save_weights_only else ".keras"
        if not self.filepath.endswith(suffix):
            raise ValueError(f"ModelCheckpoint filepath must end in {suffix!r} with "
                             f"save_weights_only={bool(save_weights_only)}, got {self.filepath!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"ModelCheckpoint mode must be 'auto', 'min' or 'max', got {mode!r}")
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint supports save_freq='epoch' only, got {save_freq!r}")
        self.monitor, self.verbose, self.mode = monitor, verbose, mode
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._better = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise KeyError(f"Failed to format this callback filepath: {self.filepath!r}. Reason: {e}") from None
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available; saving anyway", stacklevel=2)
            else:
                if self._better is None:
                    self._better = self._direction() == "up"
                best = "None" if self.best is None else f"{self.best:.5f}"
                if self.best is not None and not (current > self.best if self._better else current < self.best):
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
                    return
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, "
                          f"saving model to {path}")
                self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)

    def _direction(self):
        """Whether larger ``monitor`` values are better ("up") or worse ("down"), as Keras decides:
        from ``mode``, or for "auto" losses go down and metrics follow their ``direction``."""
        if self.mode != "auto":
            return "up" if self.mode == "max" else "down"
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        if name == "loss":
            return "down"
        from . import metrics as metrics_module
        out_dim = self.model.output_shape[-1] if self.model is not None and self.model.built else None
        for identifier in getattr(self.model, "_metric_ids", []):
            metric = metrics_module.get(identifier, output_dim=out_dim, target_ndim=1)
            if metric.name == name:
                return getattr(metric, "_direction", "down")
        raise ValueError(f"ModelCheckpoint cannot tell whether {self.monitor!r} should go up or down; "
                         "pass mode='max' or mode='min'")
