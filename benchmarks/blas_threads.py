"""How fast the SGEMM that fastnn's kernels call runs from compiled threads.

    python benchmarks/blas_threads.py            # with fastnn's BLAS warm-up
    FASTNN_BLAS_WARMUP=0 python benchmarks/blas_threads.py

Times the seeds' first layer product (rows x 784 @ 784 x 300, float32), as the
training step calls it: single-threaded OpenBLAS from Numba's threads, the
rows split in one block per thread. Prints GFLOP/s for one thread alone, each
Numba thread alone, both at once, and OpenBLAS's own threads for comparison.
Run each setting in a fresh process: the warm-up's effect lasts the process.
"""
import argparse
import time

import numpy as np
from numba import njit, prange
from threadpoolctl import threadpool_limits

from fastnn.kernels.cpu import blas


@njit(parallel=True, cache=True)
def _blocks(a, b, c, alpha_beta, m, k, n, parts, only):
    """c = a @ b in ``parts`` row blocks, one per prange iteration; ``only`` >= 0 runs that block alone."""
    for p in prange(parts):
        if only < 0 or p == only:
            m0, m1 = m * p // parts, m * (p + 1) // parts
            blas.gemm(False, False, m1 - m0, n, k, alpha_beta, a, m0 * k, k, b, 0, n, c, m0 * n, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--parts", type=int, default=2)
    args = ap.parse_args()
    m, k, n, parts = args.rows, 784, 300, args.parts
    rng = np.random.default_rng(0)
    a, b = rng.random(m * k, dtype=np.float32), rng.random(k * n, dtype=np.float32)
    c, alpha_beta = np.zeros(m * n, np.float32), np.array([1, 0], np.float32)

    def rate(run, share=1.0):
        run()
        best = float("inf")
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(5):
                run()
            best = min(best, (time.perf_counter() - t) / 5)
        return share * 2 * m * k * n / best / 1e9

    with threadpool_limits(1, user_api="blas"):
        blas.warm_buffers(parts)
        rows = {"one thread, whole product": rate(lambda: _blocks(a, b, c, alpha_beta, m, k, n, 1, -1))}
        for p in range(parts):
            rows[f"block {p} alone"] = rate(lambda: _blocks(a, b, c, alpha_beta, m, k, n, parts, p), 1 / parts)
        rows[f"{parts} blocks at once"] = rate(lambda: _blocks(a, b, c, alpha_beta, m, k, n, parts, -1))
    rows["OpenBLAS's own threads"] = rate(lambda: np.matmul(a.reshape(m, k), b.reshape(k, n), out=c.reshape(m, n)))
    print(f"{m}x{k} @ {k}x{n}, backend {blas.BACKEND}, warm-up {'on' if blas._buffers_warmed else 'off'}")
    for name, gflops in rows.items():
        print(f"  {name:28s} {gflops:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
