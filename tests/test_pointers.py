"""Compiled parts called through pointers (``fastnn.kernels.cpu.pointers``): a
call is checked against the pointer's signature when the caller compiles,
returns the callee's result and passes its exceptions on."""
import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import TypingError

from fastnn.kernels.cpu.pointers import NO_WRAPPERS, call, function_pointer

_SIG = types.float64(types.float32[::1], types.int64)


@njit(_SIG, **NO_WRAPPERS)
def _doubled(a, i):
    if i >= a.shape[0]:
        raise IndexError("_doubled: index past the end")
    return a[i] * 2.0


@njit
def _call_two(fn, a, i):
    return call(fn, a, i)


@njit
def _call_one(fn, a):
    return call(fn, a)


def test_a_call_returns_the_result_and_raises_the_callees_error():
    pointer = function_pointer(_doubled, _SIG)
    a = np.arange(4, dtype=np.float32)
    assert _call_two(pointer, a, 3) == 6.0
    assert _call_two(pointer, a, np.int32(1)) == 2.0      # converted as a direct call would be
    with pytest.raises(IndexError, match="index past the end"):
        _call_two(pointer, a, 4)


def test_a_call_that_does_not_match_the_signature_does_not_compile():
    pointer = function_pointer(_doubled, _SIG)
    with pytest.raises(TypingError, match="cannot convert array\\(float64"):
        _call_two(pointer, np.arange(4, dtype=np.float64), 1)
    with pytest.raises(TypingError, match="takes 2 arguments, got 1"):
        _call_one(pointer, np.arange(4, dtype=np.float32))
    with pytest.raises(TypingError, match="needs a Pointer"):
        _call_one(3, np.arange(4, dtype=np.float32))
