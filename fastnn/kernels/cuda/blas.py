"""Tiled shared-memory SGEMM on flat device buffers, with a fused epilogue.

Same contract as ``fastnn.kernels.cpu.blas.gemm``: row-major
``C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C`` where each matrix is
a 1-D float32 buffer plus an element offset and a leading dimension, and
``op`` optionally transposes the stored matrix. One kernel serves the dense
forward product (``x @ W``) and both backward ones (``dZ @ W^T``, ``X^T @ dZ``).

Fused around the product, so that a training step needs fewer launches:

- ``ones_row``: op(A)'s last row is all ones instead of read from ``a``, so
  C's last row gets the column sums of op(B). With the bias stored right
  after the kernel, ``[dW; db] = [X^T; 1] @ dZ`` is one product.
- ``a_rows`` (int64, not empty): stored row ``s`` of A is row
  ``a_rows[a_rows_off + s]`` of the buffer, so the first layer reads its
  batch straight from the data set through the shuffled index (``x @ W``,
  and ``X^T @ dZ`` for its weight gradient) with no gather launch.
- ``bias_off >= 0``: adds ``bias[bias_off + j]`` to every row of C.
- ``epi`` (``EPI_*``), written to ``out`` at ``out_off`` with C's leading
  dimension: ``EPI_ACT`` writes ``act(C)`` (forward: z, then a = act(z));
  ``EPI_DACT`` writes ``C * act'(z, a)`` with z and a read from ``aux`` at
  ``aux_z`` / ``aux_a`` (backward: the gradient reaching the previous op's
  output, taken straight through that op's activation).

Activation codes and formulas are those of ``fastnn.kernels.cpu.activations``,
compiled for the GPU from the very same functions.

Each block computes a ``BM x BN`` tile of C from ``BK``-deep slices of A and B
staged in shared memory; each thread holds a ``TM x TN`` register tile whose
rows and columns are strided by the thread grid, so neighbouring threads
touch neighbouring columns (coalesced stores, conflict-free shared reads).
"""
import numpy as np
from numba import cuda, float32

from ..cpu.activations import act_derivative, act_value
from .launch import SIMULATOR, configure

EPI_NONE, EPI_ACT, EPI_DACT = range(3)
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


def make_gemm_kernel(bm, bn, bk, threads_y, threads_x):
    """A GEMM kernel for ``bm x bn`` tiles, ``bk``-deep slices and a
    ``threads_y x threads_x`` block (launch with ``block=(threads_x, threads_y)``)."""
    tm, tn = bm // threads_y, bn // threads_x
    n_threads = threads_y * threads_x
    if tm * threads_y != bm or tn * threads_x != bn or (bm * bk) % n_threads or (bk * bn) % n_threads:
        raise ValueError(f"GEMM tile {bm}x{bn}x{bk} does not split over {threads_y}x{threads_x} threads")
    a_loads, b_loads = bm * bk // n_threads, bk * bn // n_threads
    # Shared tiles get one extra column, which puts the threads that store one
    # column of a slice in different banks (a shape must be a constant, hence here).
    sa_shape, sb_shape = (bk, bm + 1), (bk, bn + 1)

    @cuda.jit(cache=True)
    def gemm_kernel(trans_a, trans_b, m, n, k, alpha, beta, a, a_off, lda, a_rows, a_rows_off, b, b_off, ldb,
                    c, c_off, ldc, ones_row, bias, bias_off, epi, act, out, out_off, aux, aux_z, aux_a):
        sa = cuda.shared.array(sa_shape, float32)    # sa[kk, i] = op(A)[row0 + i, k0 + kk]
        sb = cuda.shared.array(sb_shape, float32)    # sb[kk, j] = op(B)[k0 + kk, col0 + j]
        acc = cuda.local.array((tm, tn), float32)
        ra = cuda.local.array(tm, float32)
        rb = cuda.local.array(tn, float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * threads_x + tx
        row0 = cuda.blockIdx.y * bm
        col0 = cuda.blockIdx.x * bn
        gathered = a_rows.shape[0] > 0
        for i in range(tm):
            for j in range(tn):
                acc[i, j] = _ZERO
        for k0 in range(0, k, bk):
            # Stage the slices; the fastest-varying index follows memory order.
            for s in range(a_loads):
                e = tid + s * n_threads
                if trans_a:          # stored k x m
                    i = e % bm
                    kk = e // bm
                else:                # stored m x k
                    i = e // bk
                    kk = e % bk
                v = _ZERO
                if ones_row and row0 + i == m - 1:
                    if k0 + kk < k:
                        v = _ONE
                elif row0 + i < m and k0 + kk < k:
                    if trans_a:
                        sr, sc = k0 + kk, row0 + i      # stored row and column of A
                    else:
                        sr, sc = row0 + i, k0 + kk
                    if gathered:
                        sr = a_rows[a_rows_off + sr]
                    v = a[a_off + sr * lda + sc]
                sa[kk, i] = v
            for s in range(b_loads):
                e = tid + s * n_threads
                if trans_b:          # stored n x k
                    j = e // bk
                    kk = e % bk
                else:                # stored k x n
                    j = e % bn
                    kk = e // bn
                v = _ZERO
                if col0 + j < n and k0 + kk < k:
                    if trans_b:
                        v = b[b_off + (col0 + j) * ldb + k0 + kk]
                    else:
                        v = b[b_off + (k0 + kk) * ldb + col0 + j]
                sb[kk, j] = v
            cuda.syncthreads()
            for kk in range(bk):
                for i in range(tm):
                    ra[i] = sa[kk, ty + i * threads_y]
                for j in range(tn):
                    rb[j] = sb[kk, tx + j * threads_x]
                for i in range(tm):
                    for j in range(tn):
                        acc[i, j] += ra[i] * rb[j]
            cuda.syncthreads()
        for i in range(tm):
            r = row0 + ty + i * threads_y
            if r < m:
                for j in range(tn):
                    col = col0 + tx + j * threads_x
                    if col < n:
                        ci = r * ldc + col
                        v = alpha * acc[i, j]
                        if beta != _ZERO:
                            v += beta * c[c_off + ci]
                        if bias_off >= 0:
                            v += bias[bias_off + col]
                        c[c_off + ci] = v
                        if epi == EPI_ACT:
                            out[out_off + ci] = act_value(act, v)
                        elif epi == EPI_DACT:
                            out[out_off + ci] = v * act_derivative(act, aux[aux_z + ci], aux[aux_a + ci])

    gemm_kernel.tile = (bm, bn, bk, threads_y, threads_x)
    return gemm_kernel


# 64x64 tiles of 4x4 per thread on the GPU; the simulator runs one Python
# thread per GPU thread, so it gets small tiles of the same code.
GEMM_TILE = (16, 16, 8, 4, 4) if SIMULATOR else (64, 64, 16, 16, 16)
_kernels = {}
A_ARG, A_ROWS_ARG, A_ROWS_OFF_ARG = 7, 10, 11
_no_rows = []


def no_rows():
    """An empty int64 device array: ``a_rows`` when A is read as stored."""
    if not _no_rows:
        _no_rows.append(cuda.to_device(np.zeros(0, dtype=np.int64)))
    return _no_rows[0]


def gemm_launch(trans_a, trans_b, m, n, k, alpha, beta, a, a_off, lda, b, b_off, ldb, c, c_off, ldc,
                ones_row=False, bias=None, bias_off=-1, epi=EPI_NONE, act=0, out=None, out_off=0,
                aux=None, aux_z=0, aux_a=0, a_rows=None, a_rows_off=0, tile=None):
    """``(configured kernel, args)`` computing the GEMM and epilogue described
    in the module docstring; call ``kernel(*args)`` to run it (plans keep the pair).

    Device buffers: ``a``, ``b``, ``c`` (and ``bias``, ``out``, ``aux``) 1-D
    float32; ``a_rows`` 1-D int64 or None. With ``ones_row``, ``m`` counts
    the ones row. ``tile`` overrides ``GEMM_TILE`` (tests run both sizes).
    ``A_ARG``, ``A_ROWS_ARG`` and ``A_ROWS_OFF_ARG`` are the positions of
    ``a``, ``a_rows`` and ``a_rows_off`` in the returned args."""
    tile = tuple(tile or GEMM_TILE)
    kernel = _kernels.get(tile)
    if kernel is None:
        kernel = _kernels[tile] = make_gemm_kernel(*tile)
    bm, bn, _, threads_y, threads_x = tile
    grid = (max(1, -(-n // bn)), max(1, -(-m // bm)))
    args = (bool(trans_a), bool(trans_b), int(m), int(n), int(k), np.float32(alpha), np.float32(beta),
            a, int(a_off), int(lda), no_rows() if a_rows is None else a_rows, int(a_rows_off),
            b, int(b_off), int(ldb), c, int(c_off), int(ldc),
            bool(ones_row), c if bias is None else bias, int(bias_off), int(epi), int(act),
            c if out is None else out, int(out_off), c if aux is None else aux, int(aux_z), int(aux_a))
    return configure(kernel, grid, (threads_x, threads_y)), args


def gemm(*args, **kwargs):
    """Runs ``gemm_launch(*args, **kwargs)`` now (asynchronously on the GPU)."""
    kernel, args = gemm_launch(*args, **kwargs)
    kernel(*args)
