"""Numba type names for the fixed signatures of internal kernels.

Kernels that compiled code calls with constant arguments get an explicit
signature: otherwise Numba compiles a separate specialisation for every
literal value passed (five copies of the parallel dispatcher, four of
GEMM), and the cold compile grows by seconds per copy.
"""
import functools

from numba.core.types.function_type import CompileResultWAP

F1 = "float32[::1]"     # flat float32 buffer
F2 = "float32[:, ::1]"  # row-major float32 matrix
I1 = "int64[::1]"       # op record, labels, metric codes
I2 = "int64[:, ::1]"    # program table
D1 = "float64[::1]"     # running sums


@functools.lru_cache(maxsize=None)
def function_pointer(dispatcher, sig):
    """``dispatcher`` compiled for ``sig`` (or loaded from the cache), as a
    value compiled loops take as an argument of type ``FunctionType(sig)``.

    Compiled loops call optional parts (an optimizer, clipping, a loss) through
    such pointers instead of calling them directly, so that one compiled loop
    serves every choice and a part compiles only when a model uses it. (A
    dispatcher passed directly would make Numba compile the loop again for
    each part it is given.)"""
    dispatcher.compile(sig)
    return CompileResultWAP(dispatcher.overloads[sig.args])
