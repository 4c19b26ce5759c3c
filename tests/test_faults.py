"""Faults during fit: a NaN/inf loss stops training with NonFiniteLossError and
finite weights; Ctrl-C reaches the user after the chunk in flight, with the
model usable and the finished epochs in model.history."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnn as keras
from fastnn.errors import NonFiniteLossError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def regression(optimizer="sgd", seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer=optimizer)
    return model


def line_data(n=8):
    x = np.linspace(-1, 1, 2 * n, dtype=np.float32).reshape(n, 2)
    return x, x.sum(axis=1, keepdims=True)


class SetLearningRate(keras.callbacks.Callback):
    """Sets the learning rate at the end of epoch ``at``: a way to make a later epoch diverge."""

    def __init__(self, at, rate):
        super().__init__()
        self.at, self.rate, self.epoch_start = at, rate, {}

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        self.epoch_start[epoch] = (self.model._params.copy(), opt.slots.copy(), opt.iterations)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            self.model.optimizer.learning_rate = self.rate


def test_an_infinite_loss_on_the_first_batch_stops_before_any_update():
    model = regression()
    x, y = line_data()
    x[:] = 1e25    # finite in float32, but the squared error overflows
    before = model._params.copy()
    with pytest.raises(NonFiniteLossError, match=r"loss became NaN or inf at epoch 1, batch 1; the model keeps "
                                                 r"the weights from before that batch") as info:
        model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, ArithmeticError)
    assert (info.value.epoch, info.value.batch, info.value.restored) == (0, 0, False)
    np.testing.assert_array_equal(model._params, before)
    assert model.optimizer.iterations == 0
    assert model.history.history == {}


def test_a_loss_that_goes_infinite_mid_epoch_keeps_the_last_finite_weights():
    x, y = line_data()
    x[4:] = 1e25                       # the second batch of four overflows
    model = regression()
    initial = model.get_weights()
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, batch 2") as info:
        model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert (info.value.batch, model.optimizer.iterations) == (1, 1)
    # the same model trained on the first batch alone ends on the same weights, bit for bit
    reference = regression()
    reference.set_weights(initial)
    reference.fit(x[:4], y[:4], epochs=1, batch_size=4, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model._params, reference._params)
    assert np.isfinite(model.predict(x[:4], verbose=0)).all()


def test_finished_epochs_stay_in_history_when_a_later_epoch_diverges():
    x, y = line_data()
    model = regression()
    diverge = SetLearningRate(at=1, rate=1e30)    # weights near 1e30: finite, but the loss overflows
    with pytest.raises(NonFiniteLossError, match=r"at epoch 3, batch 2") as info:
        model.fit(x, y, epochs=5, batch_size=4, shuffle=False, verbose=0, callbacks=[diverge])
    assert len(model.history.history["loss"]) == 2 and np.isfinite(model.history.history["loss"]).all()
    assert not info.value.restored and np.isfinite(model._params).all()
    assert model.optimizer.iterations == 2 * 2 + 1


def test_weights_made_infinite_by_an_update_are_restored_to_the_epoch_start():
    x, y = line_data()
    y = y + 100.0                                   # large gradients
    model = regression()
    diverge = SetLearningRate(at=0, rate=3e38)      # the next update overflows the weights to inf
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2, batch 2; the weights and optimizer state from the "
                                                 r"start of this epoch were restored") as info:
        model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[diverge])
    assert info.value.restored and (info.value.epoch, info.value.batch) == (1, 1)
    params, slots, iterations = diverge.epoch_start[1]
    np.testing.assert_array_equal(model._params, params)
    np.testing.assert_array_equal(model.optimizer.slots, slots)
    assert model.optimizer.iterations == iterations == 2


def test_weights_made_infinite_by_the_last_update_of_an_epoch_are_caught():
    x, y = line_data(4)
    y = y + 100.0
    model = regression()
    diverge = SetLearningRate(at=0, rate=3e38)      # epoch 2's only update overflows, and no loss follows it
    with pytest.raises(NonFiniteLossError, match=r"the weights became NaN or inf in the update of epoch 2, "
                                                 r"batch 1; the weights and optimizer state from the start") as info:
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[diverge])
    assert info.value.restored
    np.testing.assert_array_equal(model._params, diverge.epoch_start[1][0])
    assert model.optimizer.iterations == 1 and len(model.history.history["loss"]) == 1


def test_a_callback_that_stops_on_nan_ends_training_quietly():
    class StopOnNaN(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if not np.isfinite(logs["loss"]):
                self.model.stop_training = True

    x, y = line_data()
    x[4:] = 1e25
    model = regression()
    history = model.fit(x, y, epochs=4, batch_size=4, shuffle=False, verbose=0, callbacks=[StopOnNaN()])
    assert len(history.history["loss"]) == 1 and not np.isfinite(history.history["loss"][0])
    assert np.isfinite(model._params).all() and model.optimizer.iterations == 1


@pytest.fixture
def sigint_during_chunk(monkeypatch):
    """Makes the compiled loop's call number ``at`` (from 0) end with a SIGINT,
    as if Ctrl-C were pressed while it ran; returns a setter for ``at``."""
    from fastnn.kernels.cpu import engine
    real, calls, at = engine.run_steps, [0], [None]

    def run_steps(*args):
        done = real(*args)
        if calls[0] == at[0]:
            signal.raise_signal(signal.SIGINT)
        calls[0] += 1
        return done
    monkeypatch.setattr(engine, "run_steps", run_steps)
    return lambda n: at.__setitem__(0, n)


class EveryBatch(keras.callbacks.Callback):
    """A batch hook: every chunk is then one step, so call numbers are step numbers."""

    def on_train_batch_end(self, batch, logs=None):
        pass


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="needs signal.raise_signal")
def test_ctrl_c_during_a_chunk_lands_after_it_with_the_step_count_and_history_in_order(sigint_during_chunk):
    x, y = line_data(64)
    model = regression("adam")
    sigint_during_chunk(2 * 8 + 3)          # the 4th step of the 3rd epoch
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=10, batch_size=8, verbose=0, callbacks=[EveryBatch()])
    assert model.optimizer.iterations == 2 * 8 + 4      # the chunk that was running is counted
    assert len(model.history.history["loss"]) == 2      # the finished epochs
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # usable: trains on, from there
    assert model.optimizer.iterations == 3 * 8 + 4 and np.isfinite(model.predict(x, verbose=0)).all()


CHILD = textwrap.dedent("""
    import json, time
    import numpy as np
    import fastnn as keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((8192, 64), dtype=np.float32)
    y = rng.integers(0, 10, 8192)
    model = keras.Sequential([keras.layers.Input(shape=(64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            print("epoch", epoch, flush=True)

    try:
        model.fit(x, y, epochs=10000, batch_size=32, verbose=0, callbacks=[Report()])
        print(json.dumps({"interrupted": False}), flush=True)
    except KeyboardInterrupt:
        state = {"interrupted": True, "epochs": len(model.history.history["loss"]),
                 "iterations": model.optimizer.iterations,
                 "finite": bool(np.isfinite(model._params).all() and np.isfinite(model.optimizer.slots).all())}
        model.fit(x[:320], y[:320], epochs=1, batch_size=32, verbose=0)
        state["iterations_after"] = model.optimizer.iterations
        state["predict_finite"] = bool(np.isfinite(model.predict(x[:64], verbose=0)).all())
        print(json.dumps(state), flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_to_a_process_running_fit_stops_it_after_the_chunk():
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        seen = 0
        while seen < 2:      # two finished epochs, then Ctrl-C in the middle of the third
            line = child.stdout.readline()
            assert line, child.stderr.read()
            seen += line.startswith("epoch")
        time.sleep(0.05)
        sent = time.perf_counter()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        latency = time.perf_counter() - sent
    finally:
        child.kill()
    state = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    steps = 8192 // 32
    assert state["interrupted"], err
    assert state["epochs"] >= 2
    assert state["epochs"] * steps <= state["iterations"] <= (state["epochs"] + 1) * steps
    assert state["finite"] and state["predict_finite"]
    assert state["iterations_after"] == state["iterations"] + 10
    assert latency < 10, f"the interrupt took {latency:.1f} s to reach the user"


_INTERRUPTED_COMPILE = textwrap.dedent("""
    import os, signal, sys, traceback
    import numpy as np
    from numba.core import codegen
    import fastnn as keras

    def model():
        m = keras.Sequential([keras.layers.Input(shape=[4]), keras.layers.Dense(8, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2, activation="softmax")])
        m.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return m

    x = np.random.default_rng(0).random((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    finalize = codegen.CPUCodeLibrary.finalize
    def ctrl_c_in_compile(self):      # Ctrl-C arrives while Numba finishes compiling a kernel
        if self.name == sys.argv[1]:
            os.kill(os.getpid(), signal.SIGINT)
        return finalize(self)
    codegen.CPUCodeLibrary.finalize = ctrl_c_in_compile
    try:
        model().fit(x, y, verbose=0) if sys.argv[2] == "fit" else model().predict(x, verbose=0)
        print("not interrupted")
    except KeyboardInterrupt:
        tb = traceback.extract_tb(sys.exc_info()[2])
        print("interrupted inside numba" if any("numba" in f.filename for f in tb) else "interrupted after compile")
    codegen.CPUCodeLibrary.finalize = finalize
    print("loss", model().fit(x, y, verbose=0).history["loss"][0])
""")


@pytest.mark.parametrize("kernel, call", [("batchnorm_backward", "fit"), ("run_steps", "predict")])
def test_ctrl_c_during_the_first_compile_waits_for_it_and_leaves_the_process_able_to_train(tmp_path, kernel, call):
    # FASTNN_COMPILE_WORKERS=0: this process compiles every kernel itself, the one interrupted among them
    # (tests/test_prebuild.py interrupts a fit that waits for a compile worker)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "FASTNN_COMPILE_WORKERS": "0",
           "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    # Cold cache: the interrupt is raised once the compile is done, and training works after it.
    # Warm, from the cache the first run wrote: nothing compiles, and training works.
    for expected in ("interrupted after compile", "not interrupted"):
        out = subprocess.run([sys.executable, "-c", _INTERRUPTED_COMPILE, kernel, call], capture_output=True,
                             text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == expected, out.stdout
        assert lines[1].startswith("loss ") and np.isfinite(float(lines[1].split()[1]))
