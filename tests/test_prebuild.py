"""The first run on a machine compiles the model-independent kernels, and then the parts of
the model's layer kinds that the first process hands it, in a worker process
(``fastnn.kernels.prebuild``): what the worker puts in the cache must be what training
loads and compute the same numbers, a fit must wait for a kernel the worker is building
and never compile it too, and a worker that dies or a Ctrl-C during that wait must cost
time only, never a failed fit.

Fresh processes on Numba caches of their own. To keep it fast, one cache is filled once
(the worker's kernels, then a fit's own loss and optimizer); the later tests take a copy
without the training loop or without an empty placeholder, so that a worker starts and only
that and the model's own layer kinds are left to build."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOP = "fastnn.kernels.cpu.engine.run_steps"

# Trains a small MLP (Adam, sparse categorical cross-entropy, accuracy: the README's first
# model) for one epoch, again on a new model if a Ctrl-C stopped the first fit, and predicts;
# prints as JSON the loss, whether the first fit was interrupted, whether a worker started and,
# for every kernel a worker builds, how often this process compiled it and loaded it from the cache.
_FIT = """
import json
import numpy as np
import fastnn as keras
from fastnn.kernels import prebuild
{before_fit}
x = np.random.default_rng(0).random((64, 6), dtype=np.float32)
y = np.arange(64) % 3

def fit():
    model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model, model.fit(x, y, epochs=1, batch_size=16, verbose=0).history["loss"][0]

try:
    model, loss = fit()
    interrupted = False
except KeyboardInterrupt:
    interrupted = True
    model, loss = fit()
model.predict(np.tile(x, (4, 1)), batch_size=256, verbose=0)    # batches of 256 rows split by rows
kernels = {{prebuild._key(d): [sum(d.stats.cache_misses.values()), sum(d.stats.cache_hits.values())]
           for d, _ in prebuild._jobs()}}
print(json.dumps({{"loss": loss, "interrupted": interrupted, "started": prebuild.started(), "kernels": kernels,
                  "waited": bool(globals().get("waited"))}}))
"""

# Holds the worker once it has taken the loop (its first job), so that fit must wait for it; the
# first pause of that wait lets it go on (and with {ctrl_c}, sends this process a Ctrl-C first).
_HOLD_THE_WORKER = f"""
import os, signal, time
assert prebuild.started()
worker = prebuild._run.worker
claim = os.path.join(prebuild._run.directory, "{LOOP}")
while not os.path.exists(claim):
    time.sleep(0.001)
os.kill(worker.pid, signal.SIGSTOP)
pause, waited = prebuild._pause, []
def release():
    waited.append(True)
    prebuild._pause = pause
    if {{ctrl_c}}:
        os.kill(os.getpid(), signal.SIGINT)
    os.kill(worker.pid, signal.SIGCONT)
    pause()
prebuild._pause = release
"""


def _env(cache, workers):
    return {**os.environ, "NUMBA_CACHE_DIR": str(cache), "FASTNN_COMPILE_WORKERS": str(workers),
            "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}


def _fit(cache, workers, before_fit=""):
    out = subprocess.run([sys.executable, "-c", _FIT.format(before_fit=textwrap.dedent(before_fit))],
                         capture_output=True, text=True, env=_env(cache, workers), cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.isfinite(result["loss"])
    return result


def _by(kernels, compiled):
    """Names of the kernels this process compiled (``compiled``), or else loaded from the cache."""
    return {name for name, (misses, hits) in kernels.items() if (misses if compiled else hits)}


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A cache the worker filled on its own, then a fit (no worker) added the model's own
    kernels to: (the cache, that fit's result)."""
    from fastnn.kernels import prebuild
    cache, claims = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("claims")
    # done with its list, the worker reads job file names from its stdin: none here
    worker = subprocess.run([sys.executable, "-c", prebuild._BOOT, os.path.join(ROOT, "fastnn"), str(claims), "1"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=_env(cache, 0), cwd=ROOT,
                            timeout=600)
    assert worker.returncode == 0, worker.stderr[-3000:]
    return cache, _fit(cache, workers=1)


def _copy_without(cache, to, name):
    """A copy of ``cache`` at ``to`` without function ``name``'s files (``module.function``): a worker
    starts to build it."""
    shutil.copytree(cache, to)
    files = list(Path(to).rglob(f"{name}-*"))
    assert files
    for path in files:
        path.unlink()
    return to


@pytest.fixture
def without_loop(filled, tmp_path):
    """A copy of the filled cache that lacks the training loop: a worker starts to build it."""
    return _copy_without(filled[0], tmp_path / "cache", "engine.run_steps")


@pytest.fixture
def without_a_placeholder(filled, tmp_path):
    """A copy of the filled cache that lacks an empty placeholder: a worker starts, builds it in
    a moment and is then free for what a fit shares with it."""
    return _copy_without(filled[0], tmp_path / "cache", "optimizers.no_update")


def test_a_cache_the_worker_filled_is_loaded_by_the_next_process_which_starts_no_worker(filled):
    result = filled[1]
    assert not result["started"]     # the cache holds every model-independent kernel: nothing to start
    assert _by(result["kernels"], compiled=True) == set()
    assert _by(result["kernels"], compiled=False) == set(result["kernels"])   # fit and predict use them all


def test_fit_waits_for_the_kernel_the_worker_builds_and_loads_it(without_loop):
    result = _fit(without_loop, workers=1, before_fit=_HOLD_THE_WORKER.format(ctrl_c=False))
    assert result["waited"] and not result["interrupted"]
    assert _by(result["kernels"], compiled=True) == set()
    assert LOOP in _by(result["kernels"], compiled=False)


def test_ctrl_c_while_fit_waits_for_the_worker_leaves_the_process_able_to_train(without_loop):
    result = _fit(without_loop, workers=1, before_fit=_HOLD_THE_WORKER.format(ctrl_c=True))
    assert result["waited"] and result["interrupted"]     # and the second fit trained (finite loss)
    assert _by(result["kernels"], compiled=True) == set()


def test_a_worker_killed_while_it_compiles_leaves_fit_working(without_loop):
    # Killed once it has claimed the loop, long before it can finish it: this process
    # must find it gone and compile the loop itself.
    result = _fit(without_loop, workers=1, before_fit=f"""
        import os, time
        claim = os.path.join(prebuild._run.directory, "{LOOP}")
        while not os.path.exists(claim):
            time.sleep(0.001)
        prebuild._run.worker.kill()
        prebuild._run.worker.wait()
        assert not os.path.exists(claim + ".done")
    """)
    assert result["kernels"][LOOP] == [1, 0]     # compiled here, once
    assert _by(result["kernels"], compiled=True) == {LOOP}


def test_a_worker_starts_only_where_a_cpu_is_free_for_it_unless_the_user_says(monkeypatch):
    from fastnn import threads
    from fastnn.kernels import prebuild
    monkeypatch.delenv("FASTNN_COMPILE_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))      # lags: only where /proc/stat is not read
    for others, wanted in ((0.0, True), (0.3, True), (0.7, False), (2.0, False)):
        monkeypatch.setattr(threads, "busy_elsewhere", lambda others=others: others)
        assert prebuild._wanted() is wanted
        monkeypatch.setenv("FASTNN_COMPILE_WORKERS", "1")
        assert prebuild._wanted()
        monkeypatch.setenv("FASTNN_COMPILE_WORKERS", "0")
        assert not prebuild._wanted()
        monkeypatch.delenv("FASTNN_COMPILE_WORKERS")
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: None)
    for load, wanted in ((0.3, True), (1.2, False), (3.0, False)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert prebuild._wanted() is wanted
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.0)
    assert not prebuild._wanted()     # one CPU: nothing to run a worker on


def test_busy_elsewhere_is_the_machines_busy_cpu_time_less_this_processs_per_wall_second(monkeypatch):
    """The measure a worker start is decided on: with all CPUs busy 1.5 s a second (/proc/stat)
    of which this process took 0.25, other processes kept 1.25 CPUs busy."""
    import time
    import types
    from fastnn import threads
    t0 = time.perf_counter()
    monkeypatch.setattr(threads, "_cpu_busy_seconds", lambda: 1000.0 + 1.5 * (time.perf_counter() - t0))
    monkeypatch.setattr(threads, "os", types.SimpleNamespace(
        times=lambda: (5.0 + 0.25 * (time.perf_counter() - t0), 1.0, 0.0, 0.0, 0.0)))
    assert threads.busy_elsewhere(0.2) == pytest.approx(1.25, abs=0.02)


# Trains a small model of layer kinds run in parts ({layers} between its input and a Flatten/Dense
# head) for one epoch and predicts; prints as JSON its weights and predictions, whether a worker
# started, the functions this process shared with it (job files, in order), who claimed each
# and how often this process compiled it and loaded it from the cache.
_PARTS_FIT = """
import json, os, pickle, signal, time
import numpy as np
import fastnn as keras
from fastnn.kernels import prebuild

def shared():
    run, names = prebuild._run, []
    for name in run.shared if run is not None else ():
        with open(os.path.join(run.directory, name), "rb") as f:
            names += [(module, qualname) for module, qualname, _ in pickle.load(f)]
    return names
{after_share}
x = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
y = np.arange(32) % 3
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input(shape=(8, 8, 1)), {layers}, keras.layers.Flatten(),
                          keras.layers.Dense(3, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer={optimizer}, metrics=["accuracy"])
worker_at_compile = prebuild._run is not None
model.fit(x, y, epochs=1, batch_size=16, verbose=0)
proba = model.predict(x, verbose=0)
from fastnn.kernels.cpu.optimizers import adam
functions = {{}}
for module, qualname in shared():
    d, claim = prebuild._resolve(module, qualname), os.path.join(prebuild._run.directory, module + "." + qualname)
    functions[module + "." + qualname] = [open(claim).read() if os.path.exists(claim) else None,
                                          sum(d.stats.cache_misses.values()), sum(d.stats.cache_hits.values())]
print(json.dumps({{"weights": [w.ravel().tolist() for w in model.get_weights()], "proba": proba.tolist(),
                  "started": prebuild.started(), "shared": list(functions), "functions": functions,
                  "waited": bool(globals().get("waited")), "worker_at_compile": worker_at_compile,
                  "adam": [sum(adam.stats.cache_misses.values()), sum(adam.stats.cache_hits.values())]}}))
"""
_CONV = 'keras.layers.Conv2D(4, 3, activation="relu", padding="same"), keras.layers.MaxPooling2D(2)'
_POOL = 'keras.layers.MaxPooling2D(2)'
_PAR, _KINDS = "fastnn.kernels.kinds.parallel.", "fastnn.kernels.kinds."
# What the Conv2D model's program calls beyond every model's kernels, in the order this process links it.
_CONV_PARTS = [_PAR + "run_parts", _KINDS + "conv.conv_forward_part", _KINDS + "conv.activation_backward_part",
               _KINDS + "conv.conv_backward_part", _PAR + "forward_in_parts", _PAR + "backward_in_parts",
               _KINDS + "pooling.pool_forward_part", _KINDS + "pooling.pool_backward_part"]

# Once this process has shared the program's functions, it waits until the worker has built them all.
_WORKER_TAKES_ALL = """
share = prebuild.share
def share_then_wait(functions):
    share(functions)
    run = prebuild._run
    while run.worker.poll() is None and not all(
            os.path.exists(prebuild._done_path(run.directory, m + "." + q)) for m, q in shared()):
        time.sleep(0.01)
prebuild.share = share_then_wait
"""

# Holds the worker once it has claimed the first function shared with it (the last in the list), so
# that this process compiles all the others and must wait for that one; the first pause of that wait
# lets the worker go on.
_HOLD_THE_WORKER_ON_A_PART = """
share, pause, waited, held = prebuild.share, prebuild._pause, [], []
def share_and_hold(functions):
    share(functions)
    run = prebuild._run
    if held or not shared():     # once: predict links a program of its own
        return
    held.append(True)
    module, qualname = shared()[-1]
    while not os.path.exists(os.path.join(run.directory, module + "." + qualname)):
        time.sleep(0.001)
    os.kill(run.worker.pid, signal.SIGSTOP)
    def release():
        waited.append(True)
        prebuild._pause = pause
        os.kill(run.worker.pid, signal.SIGCONT)
        pause()
    prebuild._pause = release
prebuild.share = share_and_hold
"""


def _fit_parts(cache, workers, layers, after_share="", optimizer='"adam"'):
    script = _PARTS_FIT.format(layers=layers, after_share=textwrap.dedent(after_share), optimizer=optimizer)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(cache, workers),
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def conv_without_worker(filled, tmp_path_factory):
    """The Conv2D model trained in a process that compiled everything itself (no worker)."""
    cache = tmp_path_factory.mktemp("conv") / "cache"
    shutil.copytree(filled[0], cache)
    result = _fit_parts(cache, 0, _CONV)
    assert not result["started"] and result["shared"] == []
    return result


def test_a_conv_models_parts_are_built_by_the_worker_and_loaded_with_identical_results(without_a_placeholder,
                                                                                        conv_without_worker):
    result = _fit_parts(without_a_placeholder, 1, _CONV, after_share=_WORKER_TAKES_ALL)
    assert result["started"]
    # The model's kinds and nothing else (no other kind's parts), in the order this process links them
    assert result["shared"] == _CONV_PARTS
    for name, (owner, misses, hits) in result["functions"].items():
        assert [owner, misses, hits] == ["worker", 0, 1], name    # built by the worker, loaded here
    # The worker's machine code computes exactly what this process's own compile does
    assert result["weights"] == conv_without_worker["weights"]
    assert result["proba"] == conv_without_worker["proba"]


def test_the_optimizers_update_goes_to_the_worker_at_compile(without_a_placeholder, conv_without_worker,
                                                             tmp_path):
    """On a first run the optimizer's update (Adam's: about a second of compiling) is known at
    ``compile``, before fit writes the program: the worker gets it then, ahead of the model's parts,
    and fit loads it, with the numbers of this process's own compile."""
    cache = _copy_without(without_a_placeholder, tmp_path / "no_adam", "optimizers.adam")
    result = _fit_parts(cache, 1, _CONV, after_share=_WORKER_TAKES_ALL)
    assert result["worker_at_compile"]
    assert result["shared"] == ["fastnn.kernels.cpu.optimizers.adam"] + _CONV_PARTS
    for name, (owner, misses, hits) in result["functions"].items():
        assert [owner, misses, hits] == ["worker", 0, 1], name
    assert result["weights"] == conv_without_worker["weights"]
    assert result["proba"] == conv_without_worker["proba"]


def test_compile_starts_no_worker_for_the_optimizer_alone(filled, tmp_path):
    """Where the model-independent kernels are cached, an optimizer new to the machine (Adam with
    clipping: its update and the step preparation) compiles in fit: a worker's own start would cost
    about as much as it saves. A worker the model's new kinds start later gets only those."""
    cache = _copy_without(filled[0], tmp_path / "cache", "optimizers.adam")
    result = _fit_parts(cache, 1, _CONV, optimizer="keras.optimizers.Adam(clipnorm=1.0)")
    assert not result["worker_at_compile"] and not result["started"]
    assert result["shared"] == _CONV_PARTS
    assert result["adam"] == [1, 0]     # compiled by this process


def test_a_model_of_kinds_new_to_a_warm_cache_gets_a_worker_for_them(filled, conv_without_worker, tmp_path):
    """Where every model's kernels are cached (this machine has trained an MLP), no worker starts
    at import, but a CNN's parts (an LSTM's forward and backward: about 25 s each) still compile:
    once the program is written a worker starts for them and builds them, with the results of this
    process's own compile, and fit does not take it for a first run (``started``)."""
    cache = tmp_path / "cache"
    shutil.copytree(filled[0], cache)
    result = _fit_parts(cache, 1, _CONV, after_share=_WORKER_TAKES_ALL)
    assert not result["started"]
    assert result["shared"] == _CONV_PARTS
    for name, (owner, misses, hits) in result["functions"].items():
        assert [owner, misses, hits] == ["worker", 0, 1], name    # built by the worker, loaded here
    assert result["weights"] == conv_without_worker["weights"]
    assert result["proba"] == conv_without_worker["proba"]


def test_a_part_the_worker_holds_is_never_compiled_by_this_process_which_waits_for_it(without_a_placeholder):
    result = _fit_parts(without_a_placeholder, 1, _POOL, after_share=_HOLD_THE_WORKER_ON_A_PART)
    held = result["shared"][-1]
    assert result["waited"] and len(result["shared"]) > 1
    assert result["functions"][held] == ["worker", 0, 1]    # waited for, then loaded from the cache
    for name in result["shared"][:-1]:
        assert result["functions"][name] == ["main", 1, 0], name     # the rest: compiled here, once


@pytest.mark.parametrize("own_jobs", [False, True])
def test_a_worker_for_a_models_new_kinds_takes_the_biggest_first(own_jobs, tmp_path, monkeypatch):
    """A worker with no jobs of its own (started for a model's new kinds) builds the shared functions
    biggest bytecode first, so the first process, which takes them in the model's order, is not
    left waiting for a big one at the end; an import-time worker takes them from the end as given
    (and its own jobs between job files)."""
    import io
    import pickle
    from fastnn.kernels import prebuild
    from fastnn.kernels.cpu import engine
    from fastnn.kernels.kinds import conv
    given = [(engine.backward, engine._BACKWARD_SIG), (conv.conv_backward_part, None), (engine.forward, None),
             (conv.conv_forward_part, None)]
    with open(tmp_path / "jobs-0", "wb") as f:
        pickle.dump([(d.py_func.__module__, d.py_func.__qualname__, sig) for d, sig in given], f)
    built = []
    monkeypatch.setattr(prebuild, "_build", lambda directory, dispatcher, sig: built.append(dispatcher))
    monkeypatch.setattr(prebuild, "_jobs", lambda: [(engine.seed_kernels, None)])
    monkeypatch.setattr(sys, "stdin", io.StringIO("jobs-0\n"))
    prebuild.work(str(tmp_path), own_jobs=own_jobs)
    shared = [d for d, _ in given]
    if own_jobs:
        assert [d for d in built if d is not engine.seed_kernels] == shared[::-1] and engine.seed_kernels in built
    else:
        sizes = [len(d.py_func.__code__.co_code) for d in built]
        assert sorted(built, key=lambda d: -len(d.py_func.__code__.co_code)) == built and len(set(sizes)) == 4
        assert built[0] is conv.conv_backward_part and built != shared[::-1]


def test_compile_hands_a_running_worker_the_update_and_calls_no_schedule_otherwise(monkeypatch):
    """``compile`` hands a worker that runs the kernels training with its optimizer will call (the
    update and, with clipping, the step preparation); with no worker it hands nothing and does not
    call the user's learning-rate schedule, which Keras calls only when training."""
    import fastnn as keras
    from fastnn.kernels import prebuild
    from fastnn.kernels.cpu import optimizers
    calls, handed = [], []

    class Halving(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            calls.append(step)
            return 0.01 / (1 + step)

    monkeypatch.setattr(prebuild, "share", handed.append)
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
    for running in (False, True):
        monkeypatch.setattr(prebuild, "running", lambda: running)
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=Halving(), clipnorm=1.0), loss="mse")
    assert handed == [[(optimizers.rmsprop, optimizers.UPDATE_SIG), (optimizers.prepare_step, optimizers.PREPARE_SIG)]]
    assert calls == [0]     # once, for the worker's choice of kernels
