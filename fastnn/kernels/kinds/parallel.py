"""Kinds whose work is split across Numba's threads (convolutions, pooling,
reshaping of feature maps).

Such a kind is written as *parts*: ``part(rec, ints, params, consts, grads,
ws, gs, tmp, b, training, t, n)`` does share ``t`` of ``n`` of one pass (its
samples ``sample_range(b, t, n)``, or a block of weight rows) on the ``b``
rows of a batch; ``tmp`` is thread ``t``'s private scratch. The kind's
registered forward and backward functions (``kinds.OP_SIG``) are the two
generic wrappers below: they allocate the threads' scratch once per call and
run the op's parts, in order, through one ``prange`` dispatcher,
``run_parts``. So every kind of this family shares one parallel region
(about a second of compile time), compiled once, and only when a model uses
one of them.

The op's integer constants start with a header (``HEADER`` ints): the
addresses of ``run_parts`` and of the op's forward part and up to three
backward parts (0: none; they run in that order, each after the previous one
finished on every thread), which the program builder writes when it links
the program (the kind's ``linked`` functions, ``kinds.Kind.link``), then the
floats of scratch each thread needs and the number of parts. The kind's own
constants follow at ``rec[IAUX] + HEADER``; a layer's ``Op`` starts its
integers with ``header(...)``.
"""
import numpy as np
from numba import njit, prange, types

from .. import program as P
from ..cpu.pointers import Pointer, call, pointer_from_address
from . import KERNEL, register

_F1 = types.float32[::1]
_I1 = types.int64[::1]
PART_SIG = types.void(_I1, _I1, _F1, _F1, _F1, _F1, _F1, _F1, types.int64, types.boolean, types.int64, types.int64)
part_pointer = pointer_from_address(PART_SIG)
_RUN_SIG = types.void(Pointer(PART_SIG), _I1, _I1, _F1, _F1, _F1, _F1, _F1, _F1, types.int64, types.boolean,
                      types.int64, types.int64)
run_pointer = pointer_from_address(_RUN_SIG)

# The header: run_parts, forward part, backward parts 1-3, scratch floats per thread, parts.
H_RUN, H_FWD, H_BWD1, H_BWD2, H_BWD3, H_TMP, H_PARTS = range(7)
HEADER = 7

# Part functions' options: compiled once, called only through pointers.
PART = KERNEL


@njit(cache=True, inline="always")
def sample_range(b, t, n):
    """Samples [lo, hi) of part ``t`` of ``n`` when ``b`` samples are split evenly."""
    return t * b // n, (t + 1) * b // n


@njit(cache=True, inline="always")
def block_range(m, t, n):
    """Items [lo, hi) of part ``t`` of ``n`` for ``m`` items (weight rows, channels):
    contiguous blocks, the first ``m % n`` one item longer."""
    return t * m // n, (t + 1) * m // n


@njit(parallel=True, **KERNEL)
def run_parts(part, rec, ints, params, consts, grads, ws, gs, tmp, b, training, per_thread, n):
    """Runs part ``t`` of ``n`` on thread ``t``, each with its ``per_thread`` floats of ``tmp``."""
    for t in prange(n):
        call(part, rec, ints, params, consts, grads, ws, gs, tmp[t * per_thread:(t + 1) * per_thread], b, training,
             np.int64(t), n)


@njit(cache=True, inline="always")
def _run(rec, ints, params, consts, grads, ws, gs, b, training, first, last):
    h = rec[P.IAUX]
    n = ints[h + H_PARTS]
    per_thread = ints[h + H_TMP]
    tmp = np.empty(max(n * per_thread, 1), dtype=np.float32)
    for k in range(first, last):
        if ints[h + k] != 0:
            call(run_pointer(ints[h + H_RUN]), part_pointer(ints[h + k]), rec, ints, params, consts, grads, ws, gs,
                 tmp, b, training, per_thread, n)


@njit(**KERNEL)
def forward_in_parts(rec, ints, params, consts, grads, ws, gs, b, training):
    """The op's forward part on every thread."""
    _run(rec, ints, params, consts, grads, ws, gs, b, training, H_FWD, H_FWD + 1)


@njit(**KERNEL)
def backward_in_parts(rec, ints, params, consts, grads, ws, gs, b, training):
    """The op's backward parts, one after the other, each on every thread."""
    _run(rec, ints, params, consts, grads, ws, gs, b, training, H_BWD1, H_BWD3 + 1)


def register_parallel(name, forward, backward=(), shareable=True, on_cuda=False):
    """Registers a kind run in parts: ``forward`` a part function, ``backward``
    up to three, run in order (``on_cuda``: as ``kinds.register``). Returns the kind's code."""
    if len(backward) > 3:
        raise ValueError("at most three backward parts")
    parts = (forward, *backward) + (None,) * (3 - len(backward))
    return register(name, forward_in_parts, backward_in_parts, shareable=shareable, on_cuda=on_cuda,
                    linked=((run_parts, _RUN_SIG), *((part, PART_SIG) for part in parts)))


def header(tmp_per_thread):
    """The first ``HEADER`` integer constants of an op of a kind run in parts:
    the addresses, which the program builder writes (``kinds.Kind.link``), then
    the scratch floats each thread needs and the number of parts. The op is
    split in one part per thread of Numba's full pool (``threads.parts``), as
    the Dense blocks are; how many threads run them (``threads.ThreadChooser``)
    changes no result."""
    from ...threads import parts as pool_parts
    return (0,) * (H_TMP - H_RUN) + (int(tmp_per_thread), pool_parts())
