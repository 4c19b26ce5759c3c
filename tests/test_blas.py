"""The GEMM every layer runs on: row-major, sub-blocks by offset and leading
dimension, transposes, alpha/beta, with NumPy's OpenBLAS and with the SciPy
fallback (run in a subprocess, since the choice is made at import)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn.kernels.cpu import blas

CHECK = r"""
import numpy as np
from fastnn.kernels.cpu import blas
rng = np.random.default_rng(0)
A = rng.standard_normal((6, 9)).astype(np.float32)     # stored 6 x 9
B = rng.standard_normal((9, 11)).astype(np.float32)    # stored 9 x 11
worst = 0.0
for ta in (False, True):
    for tb in (False, True):
        a = np.ascontiguousarray(A[:, 1:8].T) if ta else A[:, 1:8]        # op(a): 6 x 7
        b = np.ascontiguousarray(B[1:8, 2:10].T) if tb else B[1:8, 2:10]  # op(b): 7 x 8
        # embed both in wider buffers: a sub-block is an offset plus a leading dimension
        abuf = np.zeros((a.shape[0], a.shape[1] + 5), np.float32); abuf[:, 3:3 + a.shape[1]] = a
        bbuf = np.zeros((b.shape[0], b.shape[1] + 4), np.float32); bbuf[:, 1:1 + b.shape[1]] = b
        c0 = rng.standard_normal((6, 12)).astype(np.float32)
        c = c0.copy()
        ab = np.array([0.5, 2.0], np.float32)
        blas.gemm(ta, tb, 6, 8, 7, ab, abuf.ravel(), 3, abuf.shape[1], bbuf.ravel(), 1, bbuf.shape[1],
                  c.ravel(), 2, 12)
        opa = a.T if ta else a
        opb = b.T if tb else b
        expect = c0.copy(); expect[:, 2:10] = 0.5 * (opa.astype(np.float64) @ opb) + 2.0 * c0[:, 2:10]
        worst = max(worst, float(np.abs(c - expect).max()))
print(blas.BACKEND, worst)
"""


@pytest.mark.parametrize("choice", ["default", "scipy"])
def test_gemm_blocks_transposes_alpha_beta(choice, tmp_path):
    env = dict(os.environ)
    env.pop("FASTNN_BLAS", None)
    if choice == "scipy":
        # Its own cache: the BLAS choice is part of the kernels' stamp, and sharing one
        # cache would make the two choices evict each other's compiled code.
        env.update(FASTNN_BLAS="scipy", NUMBA_CACHE_DIR=str(tmp_path))
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    backend, worst = out.stdout.split()
    if choice == "scipy":
        assert backend == "scipy-xxgemm"
    # float32 products of 7 terms of size ~1: a few ulps of the result
    assert float(worst) < 1e-5


def test_numpys_openblas_is_chosen_when_it_has_cblas():
    if os.environ.get("FASTNN_BLAS") == "scipy":
        pytest.skip("FASTNN_BLAS=scipy forces the fallback")
    found = blas._numpy_cblas_sgemm()
    assert (found is not None) == blas.BACKEND.startswith("numpy-openblas")


def test_the_first_compiled_run_warms_one_openblas_buffer_per_thread_at_once(monkeypatch):
    """Single-threaded OpenBLAS runs ~3x faster from a packing buffer that first served a
    512x512 product (benchmarks/blas_threads.py), and concurrent calls each take their own
    buffer, so the first compiled run makes one such product per thread of Numba's pool, all
    in flight together, with BLAS pinned to one thread; later runs do not repeat it."""
    import threading
    import time
    from threadpoolctl import threadpool_info
    from fastnn import threads
    if not blas.BACKEND.startswith("numpy"):
        pytest.skip("the warm-up is for NumPy's OpenBLAS")
    pool = threads.parts()
    calls, lock = [], threading.Lock()
    monkeypatch.setattr(blas, "_buffers_warmed", False)
    monkeypatch.delenv("FASTNN_BLAS_WARMUP", raising=False)

    class Recording(np.ndarray):
        def __matmul__(self, other):
            with lock:
                calls.append((threading.get_ident(), self.shape,
                              max(lib["num_threads"] for lib in threadpool_info() if lib["internal_api"] == "openblas")))
            deadline = time.monotonic() + 10
            while len(calls) < pool and time.monotonic() < deadline:   # all in flight at once, or stuck here
                time.sleep(0.001)
            return np.asarray(self) @ np.asarray(other)

    monkeypatch.setattr(blas.np, "ones", lambda shape, dtype: np.zeros(shape, dtype).view(Recording))
    started = time.monotonic()
    for _ in range(2):
        with threads.compiled_run():
            pinned = [lib["num_threads"] for lib in threadpool_info() if lib["internal_api"] == "openblas"]
    assert time.monotonic() - started < 10, "the products ran one after another"
    assert len(calls) == pool
    assert len({ident for ident, _, _ in calls}) == pool
    assert {(shape, blas_threads) for _, shape, blas_threads in calls} == {((512, 512), 1)}
    assert set(pinned) == {1}


def test_the_warm_up_returns_when_a_thread_cannot_be_started(monkeypatch):
    """Where the process may start no more threads, the warm-up's started threads must not wait at
    the barrier for the missing one: fit would hang before its first step."""
    import threading
    import time
    if not blas.BACKEND.startswith("numpy"):
        pytest.skip("the warm-up is for NumPy's OpenBLAS")
    monkeypatch.setattr(blas, "_buffers_warmed", False)
    monkeypatch.delenv("FASTNN_BLAS_WARMUP", raising=False)
    start, started = threading.Thread.start, []

    def start_one_only(thread):
        if started:
            raise RuntimeError("can't start new thread")
        started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_one_only)
    t0 = time.monotonic()
    blas.warm_buffers(3)
    assert time.monotonic() - t0 < 5
    assert len(started) == 1 and not started[0].is_alive()
