"""Callbacks with Keras 3's hooks, arguments and behaviour.

``fit`` always adds a ``History`` after the user's callbacks. Epoch hooks
run after every epoch; batch hooks (``on_train_batch_*``, ``on_batch_*``,
``on_test_batch_*``, ``on_predict_batch_*``) run only when some callback
defines one, because calling Python after every batch makes the compiled
loop run one step at a time. ``logs`` at a batch end hold the running means
of the loss and metrics over the epoch so far, as in Keras.
"""
import csv
import math
import os
import warnings

import numpy as np

_BATCH_HOOKS = {
    "train": ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"),
    "test": ("on_test_batch_begin", "on_test_batch_end"),
    "predict": ("on_predict_batch_begin", "on_predict_batch_end"),
}


class Callback:
    """Base class: override any hook. ``self.model`` is the model being
    trained (set ``self.model.stop_training = True`` to stop after the
    current batch or epoch); ``self.params`` holds ``verbose``, ``epochs``
    and ``steps`` (batches per epoch)."""

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
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)      # Keras's backward-compatible alias

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)


def _overrides(callback, hook):
    method = getattr(callback, hook)
    return getattr(method, "__func__", method) is not getattr(Callback, hook)


def wants_batch_hooks(callback, mode="train"):
    """True when ``callback`` defines a per-batch hook of ``mode``
    ("train", "test" or "predict"), as a method or (LambdaCallback) an attribute."""
    return any(_overrides(callback, h) for h in _BATCH_HOOKS[mode])


class History(Callback):
    """``history.history`` maps each log key to its per-epoch list of floats;
    ``history.epoch`` lists the epochs run."""

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


def as_list(callbacks):
    """``callbacks`` as a list: None gives [], one Callback a list of it (as Keras accepts)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise TypeError(f"callbacks must be a list of keras.callbacks.Callback instances, got {callbacks!r}")
    return list(callbacks)


class CallbackList:
    """Calls a hook on every callback in order. ``batch_level[mode]`` says
    whether batch hooks of that mode must run after every batch;
    ``chunk_level`` lists the callbacks whose train-batch-end hook may run at
    the end of each compiled chunk instead (``TerminateOnNaN``)."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks must be keras.callbacks.Callback instances, got {type(c).__name__}")
            c.set_model(model)
            c.set_params(params)
        # TerminateOnNaN itself (not a subclass, which may add hooks) is fine with chunk ends.
        self.chunk_level = [c for c in self.callbacks if type(c) is TerminateOnNaN]
        per_step = [c for c in self.callbacks if type(c) is not TerminateOnNaN]
        self.batch_level = {mode: any(wants_batch_hooks(c, mode) for c in per_step) for mode in _BATCH_HOOKS}

    def chunk_end(self, batch, logs):
        """Train-batch-end hook of the chunk-level callbacks (when batch hooks do not run every step)."""
        for c in self.chunk_level:
            c.on_train_batch_end(batch, logs=logs)

    # Keras's calling conventions: one logs dict (``{}`` when none) shared by
    # all callbacks, positional except for batch hooks.
    def _call(self, hook, *args, logs=None, keyword=False):
        logs = {} if logs is None else logs
        for c in self.callbacks:
            if keyword:
                getattr(c, hook)(*args, logs=logs)
            else:
                getattr(c, hook)(*args, logs)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs=logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs=logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs=logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs=logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs=logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs=logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs=logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs=logs)

    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs=logs, keyword=True)
    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs=logs, keyword=True)
    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, logs=logs, keyword=True)
    def on_test_batch_end(self, batch, logs=None): self._call("on_test_batch_end", batch, logs=logs, keyword=True)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=logs, keyword=True)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs=logs, keyword=True)


def _monitor_direction(model, monitor):
    """"min" or "max" for a logged quantity, as Keras 3 decides in "auto"
    mode: the loss goes down, accuracies up, error metrics down, and a
    metric with a ``_direction`` attribute ("up"/"down") says so itself."""
    from . import metrics as M
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "min"
    ids = getattr(model, "_metric_ids", None) or []
    try:
        prefixes = [f"{out}_" for out in model.output_names] if len(model.output_names) > 1 else []
    except (AttributeError, ValueError):
        prefixes = []
    for prefix in prefixes:     # a model of several outputs logs "<output>_<metric>"
        if name.startswith(prefix):
            name = name[len(prefix):]
            if name == "loss":
                return "min"
            break
    for m in ids:
        try:
            metric = M.get(m, output_dim=2, target_ndim=1)
        except (ValueError, TypeError):
            continue
        if getattr(metric, "name", None) != name:
            continue
        direction = getattr(metric, "_direction", None)
        if direction is None and isinstance(metric, (M.SparseCategoricalAccuracy, M.CategoricalAccuracy,
                                                     M.BinaryAccuracy)):
            direction = "up"
        elif direction is None and isinstance(metric, (M.MeanSquaredError, M.MeanAbsoluteError)):
            direction = "down"
        return {"up": "max", "down": "min"}.get(direction)
    return None


def _check_mode(mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs (Keras 3 defaults: val_loss, 0, 0,
    mode "auto", no baseline, restore_best_weights False, start_from_epoch 0).
    With ``restore_best_weights`` the weights of the best epoch are put back
    at the end of training."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = 0
        self.start_from_epoch = start_from_epoch
        self.mode = _check_mode(mode)
        self.monitor_op = None
        self.best = None

    def _set_monitor_op(self):
        direction = self.mode if self.mode != "auto" else _monitor_direction(self.model, self.monitor)
        if direction is None:
            raise ValueError(f"EarlyStopping callback received monitor={self.monitor} but fastnn can't tell "
                             "whether that metric should be maximized or minimized. Pass mode='max' or mode='min'.")
        if direction == "min":
            self.monitor_op = np.less
            self.min_delta = -abs(self.min_delta)
            self.best = float("inf")
        else:
            self.monitor_op = np.greater
            self.min_delta = abs(self.min_delta)
            self.best = -float("inf")

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs)}", stacklevel=2)
        return value

    def _is_improvement(self, value, reference):
        return bool(self.monitor_op(value - self.min_delta, reference))


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not
    improved by ``min_delta`` for ``patience`` epochs, then waits
    ``cooldown`` epochs; never below ``min_lr`` (Keras 3 defaults: val_loss,
    0.1, 10, mode "auto", 1e-4, 0, 0). Adds "learning_rate" to the epoch logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.monitor = monitor
        self.factor = factor
        self.min_lr = min_lr
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.mode = _check_mode(mode)
        self._reset()

    def _reset(self):
        # Keras decides "auto" from the name alone here: "acc" in it means higher is better.
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: np.less(a, b - self.min_delta)
            self.best = np.inf
        else:
            self.monitor_op = lambda a, b: np.greater(a, b + self.min_delta)
            self.best = -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """At each epoch start sets the learning rate to ``schedule(epoch, lr)``
    (or ``schedule(epoch)``), which must return a float; adds
    "learning_rate" to the epoch logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:     # Keras's older one-argument form
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr!r}")
        optimizer.learning_rate = lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch,
    logs: ...)``; any hook name may be passed as a keyword."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        for name, fn in hooks.items():
            if not (name.startswith("on_") and callable(getattr(Callback, name, None))):
                raise TypeError(f"LambdaCallback: {name!r} is not a callback hook")
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback: {name} must be callable, got {type(fn).__name__}")
                setattr(self, name, fn)


class TerminateOnNaN(Callback):
    """Stops training after the first batch whose loss is NaN or infinite
    (or raises RuntimeError with ``raise_error=True``).

    The running loss stays NaN once a batch's loss is, and the compiled loop
    ends its chunk right after such a batch, so this hook runs at the end of
    each chunk instead of after every step and still stops at that batch."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Writes one row per epoch to ``filename``: "epoch" then the log keys in
    sorted order, separated by ``separator``; ``append`` continues an existing
    file (writing the header only if the file is empty)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            class Dialect(csv.excel):
                delimiter = self.sep
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, _csv_value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value
    if hasattr(value, "__iter__"):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class ModelCheckpoint(Callback):
    """Saves the model (``.keras``) or its weights (``.weights.h5``) at the end of each epoch.

    ``filepath`` may hold ``{epoch}`` (from 1) and any log key with a format,
    e.g. ``"ckpt/e{epoch:02d}-{val_loss:.2f}.keras"``; missing directories are
    created. With ``save_best_only`` the model is saved only when ``monitor``
    improves on the best value so far (the first value always does, or
    ``initial_value_threshold`` must be beaten); ``mode`` "min"/"max", or
    "auto": minimise losses, follow the metric's direction otherwise
    (accuracies up, errors down). Writes are atomic, so an interrupted save
    never leaves a partial file under the checkpoint's name.

    ``save_freq``: "epoch" (default) saves at the end of each epoch; an
    integer N saves after every N batches (counted across epochs, as Keras
    does; ``filepath`` may then also hold ``{batch}``, from 1), judged on the
    running logs of the epoch. An integer makes fit return to Python after
    every step, which costs speed at small batches."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        suffix = ".weights.h5" if save_weights_only else ".keras"
        if not self.filepath.endswith(suffix):
            raise ValueError(f"ModelCheckpoint filepath must end in {suffix!r} with "
                             f"save_weights_only={bool(save_weights_only)}, got {self.filepath!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"ModelCheckpoint save_freq must be 'epoch' or a positive integer (batches), "
                             f"got {save_freq!r}")
        self.monitor, self.verbose, self.mode = monitor, verbose, _check_mode(mode)
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._better = None
        self._epoch, self._last_batch, self._since_save = 0, -1, 0
        if save_freq != "epoch":    # only then a batch hook: it makes fit step one batch at a time
            self.on_train_batch_end = self._on_batch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _on_batch(self, batch, logs=None):
        # Keras's count: a batch index not above the last one seen starts a new epoch
        self._since_save += batch + 1 if batch <= self._last_batch else batch - self._last_batch
        self._last_batch = batch
        if self._since_save >= self.save_freq:
            self._since_save = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        try:
            keys = {} if batch is None else {"batch": batch + 1}
            path = self.filepath.format(epoch=epoch + 1, **keys, **logs)
        except KeyError as e:
            raise KeyError(f"Failed to format this callback filepath: {self.filepath!r}. Reason: {e}") from None
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available; saving anyway", stacklevel=2)
            else:
                if self._better is None:
                    direction = self.mode if self.mode != "auto" else _monitor_direction(self.model, self.monitor)
                    if direction is None:
                        raise ValueError(f"ModelCheckpoint cannot tell whether {self.monitor!r} should go up or "
                                         "down; pass mode='max' or mode='min'")
                    self._better = direction == "max"
                    if self.best is None:    # Keras starts from the worst value: "improved from inf"
                        self.best = -np.inf if self._better else np.inf
                best = f"{self.best:.5f}"
                if not (current > self.best if self._better else current < self.best):
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


# TensorBoard needs this module's Callback, so it is imported once Callback exists.
from .tensorboard import TensorBoard  # noqa: E402

__all__ = ["CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ModelCheckpoint", "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
