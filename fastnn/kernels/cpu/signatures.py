"""Numba type names for the fixed signatures of internal kernels.

Kernels that compiled code calls with constant arguments get an explicit
signature: otherwise Numba compiles a separate specialisation for every
literal value passed (five copies of the parallel dispatcher, four of
GEMM), and the cold compile grows by seconds per copy.
"""
import functools

from numba import types
from numba.core.types.function_type import CompileResultWAP
from numba.core.typing.typeof import typeof_impl

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
    if sig.args not in dispatcher.overloads:   # an explicit signature compiles at import
        dispatcher.compile(sig)
    return _FunctionPointer(dispatcher.overloads[sig.args], sig)


class _FunctionPointer(CompileResultWAP):
    """A compiled function as a first-class function value, with its Numba
    type made once: Numba's own typing of such a value builds a new
    ``FunctionType`` at every call of a compiled loop (about 5 us each,
    measured: 45 us per call of ``train_steps`` with its eight pointers)."""

    def __init__(self, cres, sig):
        super().__init__(cres)
        self.numba_type = types.FunctionType(sig)


@typeof_impl.register(_FunctionPointer)
def _typeof_function_pointer(val, c):
    return val.numba_type
