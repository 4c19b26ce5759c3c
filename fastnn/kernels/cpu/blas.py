"""Row-major single-precision GEMM on flat buffers, callable from compiled code.

Numba's own ``np.dot`` needs whole contiguous arrays and allocates or
overwrites its output. Training wants more: sub-blocks of a flat buffer
(a column slice of a weight matrix is a pointer plus a leading dimension),
accumulation (``beta``) and transposes without copies. So we call the
``numba_xxgemm`` entry point that Numba itself uses for ``np.dot``: it
forwards to SciPy's BLAS, is resolved by symbol name at link time, and
therefore keeps ``cache=True`` working across processes.
"""
import numpy as np
from numba import njit, types
from numba.np.linalg import ensure_blas

from .signatures import F1

ensure_blas()

_xxgemm = types.ExternalFunction(
    "numba_xxgemm",
    types.intc(
        types.char, types.char, types.char,            # kind, transa, transb
        types.intp, types.intp, types.intp,            # m, n, k
        types.CPointer(types.float32),                 # alpha
        types.CPointer(types.float32), types.intp,     # a, lda
        types.CPointer(types.float32), types.intp,     # b, ldb
        types.CPointer(types.float32),                 # beta
        types.CPointer(types.float32), types.intp,     # c, ldc
    ),
)

_KIND_S = ord("s")
_NO = ord("n")
_TR = ord("t")


@njit(f"void(boolean, boolean, int64, int64, int64, {F1}, {F1}, int64, int64, {F1}, int64, int64, {F1}, int64, int64)",
      cache=True, nogil=True)
def gemm(trans_a, trans_b, m, n, k, alpha_beta, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C, all row-major.

    ``a``, ``b``, ``c`` are 1-D float32 buffers and ``*_off`` element offsets
    into them; ``ld*`` are row strides in elements, so a column block of a
    wider matrix is addressed by offset + leading dimension. ``trans_*`` is
    True to use the transpose of the stored matrix. ``alpha_beta`` is a
    float32 array ``[alpha, beta]``. Callers guarantee the block fits.
    """
    if m == 0 or n == 0:
        return
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T:
    # swap the operands and the sizes, keep the transpose flags.
    _xxgemm(
        _KIND_S, _TR if trans_b else _NO, _TR if trans_a else _NO,
        n, m, k,
        alpha_beta[0:].ctypes,
        b[b_off:].ctypes, ldb,
        a[a_off:].ctypes, lda,
        alpha_beta[1:].ctypes,
        c[c_off:].ctypes, ldc,
    )
