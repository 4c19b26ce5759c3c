"""Callbacks: Keras 3's hooks and their order, stopping mid-epoch, and
EarlyStopping, ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN,
CSVLogger and LambdaCallback as keras/src/callbacks/*.py define them.

Where a test needs a monitored quantity to follow a known sequence, a
LambdaCallback placed before the callback under test writes it into the
epoch logs (callbacks run in list order on the same logs dict, as in Keras).
"""
import csv

import numpy as np
import pytest

import fastnn as keras
from fastnn.models import training

F = np.float32
rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, (10, 3)).astype(F)
Y = (X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(F)
XV, YV = X[:4] + 0.1, Y[:4]


def _model(optimizer="sgd", loss="mse", metrics=("mse",)):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(shape=(3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(loss=loss, optimizer=optimizer, metrics=list(metrics))
    return model


def _scripted(key, values):
    """Writes values[epoch] into the epoch logs under ``key``."""
    return keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.__setitem__(key, values[epoch]))


def _rate_probe(steps=2):
    """A model whose every SGD step adds exactly that step's learning rate to
    one kernel entry (one-hot rows, MAE far from its target: gradient -1)."""
    model = keras.Sequential([keras.layers.Input(shape=(steps,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(loss="mae", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    return model, np.eye(steps, dtype=F), np.full((steps, 1), 1000.0, F)


class Recorder(keras.callbacks.Callback):
    """Records every hook call as (hook, index or None)."""

    def __init__(self):
        super().__init__()
        self.calls, self.batch_logs = [], []

    def _log(self, name, index=None, logs=None):
        self.calls.append((name, index))
        if name.endswith("batch_end"):
            self.batch_logs.append(dict(logs))

    def on_train_begin(self, logs=None): self._log("train_begin")
    def on_train_end(self, logs=None): self._log("train_end")
    def on_epoch_begin(self, epoch, logs=None): self._log("epoch_begin", epoch)
    def on_epoch_end(self, epoch, logs=None): self._log("epoch_end", epoch)
    def on_train_batch_begin(self, batch, logs=None): self._log("train_batch_begin", batch)
    def on_train_batch_end(self, batch, logs=None): self._log("train_batch_end", batch, logs)
    def on_test_begin(self, logs=None): self._log("test_begin")
    def on_test_end(self, logs=None): self._log("test_end")
    def on_test_batch_begin(self, batch, logs=None): self._log("test_batch_begin", batch)
    def on_test_batch_end(self, batch, logs=None): self._log("test_batch_end", batch, logs)
    def on_predict_begin(self, logs=None): self._log("predict_begin")
    def on_predict_end(self, logs=None): self._log("predict_end")
    def on_predict_batch_begin(self, batch, logs=None): self._log("predict_batch_begin", batch)
    def on_predict_batch_end(self, batch, logs=None): self._log("predict_batch_end", batch, logs)


def _batches(kind, n):
    return [call for i in range(n) for call in ((f"{kind}_batch_begin", i), (f"{kind}_batch_end", i))]


def test_hooks_run_in_keras_order_with_model_and_params():
    model = _model()
    batch0_loss = model.evaluate(X[:4], Y[:4], verbose=0)[0]     # the first batch, before any step
    rec = Recorder()
    history = model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0, validation_data=(XV, YV),
                        callbacks=[rec])
    validation = [("test_begin", None), *_batches("test", 1), ("test_end", None)]
    epoch = lambda e: [("epoch_begin", e), *_batches("train", 3), *validation, ("epoch_end", e)]   # noqa: E731
    assert rec.calls == [("train_begin", None), *epoch(0), *epoch(1), ("train_end", None)]
    assert rec.model is model and rec.params == {"verbose": 0, "epochs": 2, "steps": 3}
    train_logs = [logs for (name, _), logs in zip([c for c in rec.calls if c[0].endswith("batch_end")],
                                                  rec.batch_logs) if name == "train_batch_end"]
    # Batch logs hold the running means over the epoch: the first is batch 0's loss, the last the epoch's.
    assert train_logs[0]["loss"] == pytest.approx(batch0_loss, rel=1e-6)
    assert [train_logs[2]["loss"], train_logs[5]["loss"]] == history.history["loss"]
    assert [train_logs[2]["mse"], train_logs[5]["mse"]] == history.history["mse"]

    rec.calls.clear()
    rec.batch_logs.clear()
    result = model.evaluate(XV, YV, batch_size=3, verbose=0, callbacks=[rec], return_dict=True)
    assert rec.calls == [("test_begin", None), *_batches("test", 2), ("test_end", None)]
    assert rec.batch_logs[-1] == result
    rec.calls.clear()
    rec.batch_logs.clear()
    out = model.predict(X, batch_size=4, verbose=0, callbacks=[rec])
    assert rec.calls == [("predict_begin", None), *_batches("predict", 3), ("predict_end", None)]
    np.testing.assert_array_equal(np.concatenate([logs["outputs"] for logs in rec.batch_logs]), out)


def test_stop_training_in_a_batch_hook_stops_after_that_batch():
    seen = []

    class StopAtThirdBatchOfSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            seen.append((self.epoch, batch))
            if (self.epoch, batch) == (1, 2):
                self.model.stop_training = True

    model = _model()
    history = model.fit(X, Y, batch_size=2, epochs=4, verbose=0, validation_data=(XV, YV),
                        callbacks=[StopAtThirdBatchOfSecondEpoch()])
    assert seen == [(0, b) for b in range(5)] + [(1, 0), (1, 1), (1, 2)]
    assert model.optimizer.iterations == 5 + 3
    assert history.epoch == [0, 1] and len(history.history["val_loss"]) == 2   # the epoch still ends, as Keras


def test_batch_hooks_only_break_the_loop_into_single_steps_when_defined(monkeypatch):
    calls = []
    run_steps = training.engine.run_steps

    def counting(*args):
        calls.append(1)
        return run_steps(*args)

    monkeypatch.setattr(training.engine, "run_steps", counting)
    # Chunks grow toward _CHUNK_SECONDS of work; a huge target takes timing (and machine load) out of it.
    monkeypatch.setattr(training, "_CHUNK_SECONDS", 1e9)
    x, y = np.repeat(X, 8, axis=0), np.repeat(Y, 8, axis=0)       # 80 rows: 40 steps of 2
    epoch_only = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: None)
    _model().fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[epoch_only, keras.callbacks.TerminateOnNaN()])
    assert len(calls) <= 40 // 8                                  # whole chunks of steps
    calls.clear()
    per_batch = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None)
    _model().fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[per_batch])
    assert len(calls) == 40


# -- EarlyStopping (keras/src/callbacks/early_stopping.py) -----------------------------------

@pytest.mark.parametrize("kwargs,script,epochs_run", [
    ({"patience": 0}, [5, 4, 4.5, 3], 3),
    ({"patience": 2}, [5, 4, 3, 3.5, 3.2, 3.1, 3.0], 5),
    ({"patience": 1, "min_delta": 0.5}, [5, 4.8, 4.6, 4.4], 2),
    ({"patience": 2}, [5, 4, 4.5, 4.2, 4.1, 4.0], 4),
    ({"patience": 2, "baseline": 2.0}, [5, 4, 4.5, 4.2, 4.1, 4.0], 3),   # improving on the best is not enough
    ({"patience": 1, "start_from_epoch": 3}, [5, 6, 7, 8, 9, 10], 5),
    ({"monitor": "val_mse", "patience": 1}, [5, 4, 4.5, 4.2, 3], 3),
    ({"monitor": "val_acc", "mode": "max", "patience": 1}, [0.5, 0.6, 0.55, 0.58, 0.9], 3),
], ids=["patience0", "patience2", "min_delta", "no-baseline", "baseline", "start_from_epoch", "metric", "max"])
def test_early_stopping_stops_when_keras_does(kwargs, script, epochs_run):
    monitor = kwargs.get("monitor", "val_loss")
    history = _model().fit(X, Y, epochs=len(script), verbose=0, validation_data=(XV, YV),
                           callbacks=[_scripted(monitor, script), keras.callbacks.EarlyStopping(**kwargs)])
    assert len(history.epoch) == epochs_run


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    """Trained towards y = x and validated on y = 0.5 x: val_loss falls, then rises."""
    x = rng.uniform(-1, 1, (16, 1)).astype(F)
    model = keras.Sequential([keras.layers.Input(shape=(1,)),
                              keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.05))
    weights = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()))
    stop = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, x, batch_size=4, epochs=50, verbose=0, validation_data=(x, 0.5 * x),
                        callbacks=[record, stop])
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert 0 < best and len(val) == best + 3 < 50 and stop.best_epoch == best and stop.stopped_epoch == best + 2
    for got, expected in zip(model.get_weights(), weights[best]):
        np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(weights[-1][0], weights[best][0])


def test_early_stopping_needs_a_direction_it_can_tell():
    with pytest.raises(ValueError, match="mode"):
        keras.callbacks.EarlyStopping(mode="maximum")
    with pytest.raises(ValueError, match="maximized or minimized"):
        _model().fit(X, Y, epochs=1, verbose=0, callbacks=[_scripted("score", [1.0]),
                                                           keras.callbacks.EarlyStopping(monitor="score")])


# -- learning-rate callbacks ----------------------------------------------------------------

def _probe_kernels(model, x, y, epochs, callbacks):
    """The probe's kernel entry 0 after each epoch: the float32 running sum of the rates used."""
    kernels = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: kernels.append(model.layers[0].get_weights()[0][0, 0]))
    history = model.fit(x, y, batch_size=1, epochs=epochs, shuffle=False, verbose=0,
                        callbacks=[*callbacks, record])
    return np.array(kernels), history


def _running_sums(rates):
    """What the probe's kernel holds after steps with these rates: float32 sums, in order."""
    total, out = F(0), []
    for r in rates:
        total = F(total + F(r))
        out.append(total)
    return np.array(out)


def test_reduce_lr_on_plateau_reduces_at_the_epoch_keras_does():
    model, x, y = _rate_probe()
    script = [1.0, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.85]
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1)
    kernels, history = _probe_kernels(model, x, y, len(script), [_scripted("val_loss", script), reduce])
    # Keras: no improvement for 2 epochs at epochs 3 and 6 (the cooldown epoch 4 resets the wait).
    lr = [F(0.1)] * 4 + [F(float(F(0.1)) * 0.5)] * 3
    lr.append(F(float(lr[-1]) * 0.5))
    np.testing.assert_array_equal(kernels, _running_sums(lr))
    assert history.history["learning_rate"] == [float(r) for r in lr]      # logged before the epoch's reduction
    assert model.optimizer.learning_rate == float(lr[-1])      # epoch 7 only restarts the wait


def test_reduce_lr_on_plateau_keras_defaults_and_floor():
    cb = keras.callbacks.ReduceLROnPlateau()
    assert (cb.monitor, cb.factor, cb.patience, cb.min_delta, cb.cooldown, cb.min_lr, cb.mode) == (
        "val_loss", 0.1, 10, 1e-4, 0, 0.0, "auto")
    with pytest.raises(ValueError, match="factor"):
        keras.callbacks.ReduceLROnPlateau(factor=1.0)
    model, x, y = _rate_probe()
    floor = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=0, min_lr=0.05)
    kernels, _ = _probe_kernels(model, x, y, 4, [_scripted("loss", [1.0] * 4), floor])
    np.testing.assert_array_equal(kernels, _running_sums([0.1, 0.1, 0.05, 0.05]))


def test_learning_rate_scheduler_sets_the_rate_of_each_epoch():
    model, x, y = _rate_probe()
    halve_late = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5)
    kernels, history = _probe_kernels(model, x, y, 4, [halve_late])
    expected = [F(0.1), F(0.1), F(float(F(0.1)) * 0.5), F(float(F(float(F(0.1)) * 0.5)) * 0.5)]
    np.testing.assert_array_equal(kernels, _running_sums(expected))
    assert history.history["learning_rate"] == [float(r) for r in expected]
    model, x, y = _rate_probe()
    kernels, _ = _probe_kernels(model, x, y, 3, [keras.callbacks.LearningRateScheduler(lambda epoch: 0.2 / (epoch + 1))])
    np.testing.assert_array_equal(kernels, _running_sums([0.2, 0.1, 0.2 / 3]))
    with pytest.raises(ValueError, match="should be a float"):
        _rate_probe()[0].fit(x, y, epochs=1, verbose=0,
                             callbacks=[keras.callbacks.LearningRateScheduler(lambda epoch, lr: 1)])


# -- TerminateOnNaN (keras/src/callbacks/terminate_on_nan.py) ------------------------------

def _diverging():
    """A linear model and data whose batch 4 (rows 8, 9 at batch size 2) holds an input
    whose squared error overflows float32."""
    x = np.repeat(X[:8], 2, axis=0)
    x[9] = 1e30
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(shape=(3,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    return model, x, np.repeat(Y[:8], 2, axis=0)


@pytest.mark.parametrize("per_step", [False, True], ids=["chunks", "per-step"])
def test_terminate_on_nan_stops_after_the_first_non_finite_batch(per_step):
    model, x, y = _diverging()
    extra = [keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None)] if per_step else []
    history = model.fit(x, y, batch_size=2, epochs=3, shuffle=False, verbose=0,
                        callbacks=[*extra, keras.callbacks.TerminateOnNaN()])
    # fastnn does not apply the non-finite batch (Keras does): the weights stay the last finite ones
    assert model.optimizer.iterations == 4 and history.epoch == [0]
    assert not np.isfinite(history.history["loss"][0]) and np.isfinite(model._params).all()


def test_without_terminate_on_nan_fit_raises_and_raise_error_raises():
    model, x, y = _diverging()
    with pytest.raises(keras.errors.NonFiniteLossError, match="epoch 1, batch 5"):   # never goes on silently
        model.fit(x, y, batch_size=2, epochs=3, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 4
    with pytest.raises(RuntimeError, match="batch 4"):
        _diverging()[0].fit(x, y, batch_size=2, epochs=3, shuffle=False, verbose=0,
                               callbacks=[keras.callbacks.TerminateOnNaN(raise_error=True)])


# -- CSVLogger (keras/src/callbacks/csv_logger.py) and LambdaCallback ------------------------

def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    model = _model()
    history = model.fit(X, Y, epochs=3, verbose=0, validation_data=(XV, YV),
                        callbacks=[keras.callbacks.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "mse", "val_loss", "val_mse"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for col, key in enumerate(rows[0][1:], start=1):
        assert [float(r[col]) for r in rows[1:]] == history.history[key]

    model.fit(X, Y, epochs=2, verbose=0, callbacks=[keras.callbacks.CSVLogger(path, separator=";", append=True)])
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 6 and lines[0].startswith("epoch,") and lines[4].startswith("0;")
    assert lines[5].count(";") == 2          # epoch;loss;mse: no header again, the new separator


def test_lambda_callback_hooks():
    calls = []
    cb = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: calls.append("begin"),
                                        on_epoch_end=lambda epoch, logs: calls.append(("epoch", epoch)),
                                        on_train_batch_end=lambda batch, logs: calls.append(("batch", batch)),
                                        on_test_end=lambda logs: calls.append("test_end"))
    _model().fit(X, Y, batch_size=5, epochs=2, verbose=0, validation_data=(XV, YV), callbacks=[cb])
    assert calls == ["begin", ("batch", 0), ("batch", 1), "test_end", ("epoch", 0),
                     ("batch", 0), ("batch", 1), "test_end", ("epoch", 1)]
    with pytest.raises(TypeError, match="on_epoch_ending"):
        keras.callbacks.LambdaCallback(on_epoch_ending=print)
    with pytest.raises(TypeError, match="Callback"):
        _model().fit(X, Y, epochs=1, verbose=0, callbacks=[print])
