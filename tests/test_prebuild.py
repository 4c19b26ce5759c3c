"""The first run on a machine compiles the model-independent kernels in a worker process
(``fastnn.kernels.prebuild``): what the worker puts in the cache must be what training
loads, a fit must wait for a kernel the worker is building, and a worker that dies or a
Ctrl-C during that wait must cost time only, never a failed fit.

Fresh processes on Numba caches of their own. To keep it fast, one cache is filled once
(the worker's kernels, then a fit's own loss and optimizer); the later tests take a copy
without the training loop, so that only the loop is left to build."""
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
    worker = subprocess.run([sys.executable, "-c", prebuild._BOOT, os.path.join(ROOT, "fastnn"), str(claims)],
                            capture_output=True, text=True, env=_env(cache, 0), cwd=ROOT, timeout=600)
    assert worker.returncode == 0, worker.stderr[-3000:]
    return cache, _fit(cache, workers=1)


@pytest.fixture
def without_loop(filled, tmp_path):
    """A copy of the filled cache that lacks the training loop: a worker starts to build it."""
    cache = tmp_path / "cache"
    shutil.copytree(filled[0], cache)
    loop_files = list(Path(cache).rglob("engine.run_steps-*"))
    assert loop_files
    for path in loop_files:
        path.unlink()
    return cache


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
    from fastnn.kernels import prebuild
    monkeypatch.delenv("FASTNN_COMPILE_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for load, wanted in ((0.3, True), (1.2, False), (3.0, False)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert prebuild._wanted() is wanted
        monkeypatch.setenv("FASTNN_COMPILE_WORKERS", "1")
        assert prebuild._wanted()
        monkeypatch.setenv("FASTNN_COMPILE_WORKERS", "0")
        assert not prebuild._wanted()
        monkeypatch.delenv("FASTNN_COMPILE_WORKERS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not prebuild._wanted()     # one CPU: nothing to run a worker on
