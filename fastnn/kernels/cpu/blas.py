"""Row-major single-precision GEMM on flat buffers, callable from compiled code.

Numba's own ``np.dot`` needs whole contiguous arrays and allocates or
overwrites its output. Training wants more: sub-blocks of a flat buffer
(a column slice of a weight matrix is a pointer plus a leading dimension),
accumulation (``beta``) and transposes without copies. So the kernels call
an SGEMM entry point by symbol name, resolved when the compiled code is
linked, which keeps ``cache=True`` working across processes.

Which SGEMM: NumPy's bundled OpenBLAS when its CBLAS symbol can be found,
else SciPy's (through ``numba_xxgemm``, the entry point Numba's ``np.dot``
uses). Measured on this project's 2-core machine, one thread, the seeds'
first layer (32x784 @ 784x300): NumPy's OpenBLAS 0.3.31 at 78 GFLOP/s,
SciPy's 0.3.30 at 51. The choice is part of the kernels' cache stamp, so a
process that finds the other library recompiles instead of calling a
symbol that is not there.
"""
import ctypes
import os
import threading

import numpy as np
from llvmlite import binding as llvm
from numba import njit, types
from numba.core import errors
from numba.extending import intrinsic

from .. import cache

_SYMBOL = "fastnn_cblas_sgemm"
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _numpy_cblas_sgemm():
    """(address, ILP64?) of ``cblas_sgemm`` in NumPy's own OpenBLAS, or None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    for lib in threadpool_info():
        path = lib.get("filepath", "")
        if lib.get("internal_api") != "openblas" or not path.startswith(numpy_dir) or "numpy" not in path:
            continue
        try:
            handle = ctypes.CDLL(path)
        except OSError:
            continue
        for name, ilp64 in (("scipy_cblas_sgemm64_", True), ("cblas_sgemm64_", True),
                            ("scipy_cblas_sgemm", False), ("cblas_sgemm", False)):
            fn = getattr(handle, name, None)
            if fn is not None:
                return ctypes.cast(fn, ctypes.c_void_p).value, ilp64
    return None


_found = None if os.environ.get("FASTNN_BLAS") == "scipy" else _numpy_cblas_sgemm()
if _found is not None:
    BACKEND = "numpy-openblas-ilp64" if _found[1] else "numpy-openblas"
    llvm.add_symbol(_SYMBOL, _found[0])
    _int = types.int64 if _found[1] else types.int32
    _cblas_sgemm = types.ExternalFunction(_SYMBOL, types.void(
        types.int32, types.int32, types.int32,                 # order, transa, transb
        _int, _int, _int,                                      # m, n, k
        types.float32, types.CPointer(types.float32), _int,    # alpha, a, lda
        types.CPointer(types.float32), _int,                   # b, ldb
        types.float32, types.CPointer(types.float32), _int))   # beta, c, ldc
else:
    # Numba's numba_xxgemm calls SciPy's BLAS, which must be imported first; only this
    # fallback needs SciPy: importing scipy.linalg is a large part of importing fastnn.
    from numba.np.linalg import ensure_blas
    ensure_blas()
    BACKEND = "scipy-xxgemm"
    _cblas_sgemm = None
cache.extend_stamp(BACKEND)

_buffers_warmed = False


def warm_buffers(threads):
    """Runs one 512x512 product on each of ``threads`` threads at once, once per process,
    before the compiled loops call OpenBLAS single-threaded from Numba's threads.

    OpenBLAS hands each concurrent call one of its packing buffers, and how fast a buffer
    runs depends on the first products it served: measured on a 1024x784 @ 784x300
    product (2-core AMD EPYC VM, OpenBLAS 0.3.31), 11 GFLOP/s on one thread in a process
    whose first products had the model's shapes, 36 once a 512x512 one had run (a 64x64
    one does not do it). A buffer warmed this way stays fast for any later call, so one
    product per thread the loops run in parallel, all at once so that each takes its own
    buffer: with the single threaded warm-up this replaced, two blocks at once ran at
    16-21 GFLOP/s together, with this one 41-72 (``benchmarks/blas_threads.py``;
    ``FASTNN_BLAS_WARMUP=0`` skips it, to measure without it). Call it with BLAS pinned
    to one thread.
    """
    global _buffers_warmed
    if _buffers_warmed or not BACKEND.startswith("numpy") or os.environ.get("FASTNN_BLAS_WARMUP") == "0":
        return
    _buffers_warmed = True
    x = np.ones((512, 512), np.float32)
    together = threading.Barrier(threads)

    def product():
        try:
            together.wait(timeout=10)
        except threading.BrokenBarrierError:    # a thread did not start: warm the buffers it can
            pass
        x @ x      # NumPy releases the GIL here, so the products overlap

    workers = []
    for _ in range(threads):
        worker = threading.Thread(target=product, daemon=True)
        try:
            worker.start()
        except RuntimeError:    # no thread to be had: the started ones must not wait for it
            together.abort()
            break
        workers.append(worker)
    for worker in workers:
        worker.join()


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


@intrinsic
def _at(typingctx, buf, offset):
    """The address of ``buf[offset]`` (``buf`` a contiguous 1-D float32 buffer) as a float32
    pointer, what ``buf[offset:].ctypes`` gives without compiling a slice at every call site."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.float32 and buf.ndim == 1 and buf.layout == "C"
            and isinstance(offset, types.Integer)):
        raise errors.TypingError(f"_at() takes a contiguous 1-D float32 buffer and an integer offset, got {buf}, "
                                 f"{offset}")

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.gep(data, [context.cast(builder, args[1], sig.args[1], types.intp)])

    return types.CPointer(types.float32)(buf, offset), codegen


# Inlined into each caller, so gemm compiles nowhere on its own (with the explicit signature it
# had, every process compiled or loaded it at import); its flags are then constants there.
_inlined = njit(cache=True, nogil=True, inline="always")

if _cblas_sgemm is not None:
    @_inlined
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
        _cblas_sgemm(_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS,
                     m, n, k, alpha_beta[0], _at(a, a_off), lda, _at(b, b_off), ldb, alpha_beta[1], _at(c, c_off), ldc)
else:
    @_inlined
    def gemm(trans_a, trans_b, m, n, k, alpha_beta, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
        """C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C, all row-major (see above)."""
        if m == 0 or n == 0:
            return
        # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T:
        # swap the operands and the sizes, keep the transpose flags.
        _xxgemm(
            _KIND_S, _TR if trans_b else _NO, _TR if trans_a else _NO,
            n, m, k,
            _at(alpha_beta, 0),
            _at(b, b_off), ldb,
            _at(a, a_off), lda,
            _at(alpha_beta, 1),
            _at(c, c_off), ldc,
        )
