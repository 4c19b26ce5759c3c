"""How fastnn sizes its CPU thread pool in a process (fastnn.config.num_threads):
NUMBA_NUM_THREADS, else OMP_NUM_THREADS (what Dask's nanny sets in each worker),
else the CPUs of the process's affinity mask. Each case runs in a fresh process,
since the pool's size is fixed when numba is imported."""
import os
import shutil
import subprocess
import sys

import pytest

PROBE = "import fastnn; print(*fastnn.config.num_threads(), sep='|')"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code=PROBE, prefix=(), **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, clean.get("PYTHONPATH")]))
    out = subprocess.run([*prefix, sys.executable, "-c", code], env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True).stdout.strip().splitlines()[-1]
    threads, source = out.split("|")
    return int(threads), source


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_default_is_the_cpus_the_process_may_use():
    assert _run() == (_cpus(), "CPU affinity")


def test_omp_num_threads_sizes_the_pool_as_dask_workers_need():
    assert _run(OMP_NUM_THREADS="1") == (1, "OMP_NUM_THREADS")
    # never more threads than CPUs: OMP_NUM_THREADS=64 on a small machine is capped
    assert _run(OMP_NUM_THREADS="64") == (min(64, _cpus()), "OMP_NUM_THREADS")
    # OpenMP's nested form "2,1": the outer level counts; junk is ignored
    assert _run(OMP_NUM_THREADS="1,4") == (1, "OMP_NUM_THREADS")
    assert _run(OMP_NUM_THREADS="many") == (_cpus(), "CPU affinity")


def test_numba_num_threads_wins():
    assert _run(NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="2") == (1, "NUMBA_NUM_THREADS")


def test_numba_imported_first_keeps_its_own_choice():
    threads, source = _run("import numba; " + PROBE, OMP_NUM_THREADS="1")
    assert (threads, source) == (_cpus(), "numba (imported before fastnn)")


@pytest.mark.skipif(shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity") or _cpus() < 2,
                    reason="needs taskset and two CPUs")
def test_cpu_affinity_limits_the_pool():
    cpu = sorted(os.sched_getaffinity(0))[0]
    assert _run(prefix=("taskset", "-c", str(cpu))) == (1, "CPU affinity")


def test_one_thread_trains():
    code = ("import numpy as np, fastnn as keras\n"
            "m = keras.Sequential([keras.layers.Dense(4, activation='relu'), keras.layers.Dense(2)])\n"
            "m.compile(loss='mse', optimizer='adam')\n"
            "m.fit(np.ones((64, 3)), np.ones((64, 2)), epochs=1, verbose=0)\n" + PROBE)
    assert _run(code, OMP_NUM_THREADS="1") == (1, "OMP_NUM_THREADS")
