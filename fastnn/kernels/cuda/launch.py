"""Launch sizes shared by the CUDA kernels, and the simulator switch.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) every GPU thread
is a Python thread, so the simulator gets small blocks; the kernels are the
same code either way and are written for any block and grid size.
"""
import functools
import types
import warnings

from numba.core import config as _numba_config
from numba.core.dispatcher import Dispatcher

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)

# Threads per block of the 1-D kernels, and the most blocks a grid-stride
# kernel is launched with (enough to fill any current GPU several times).
THREADS = 32 if SIMULATOR else 256
MAX_BLOCKS = 4 if SIMULATOR else 4096
# Dropout draws from one xoroshiro128+ state per thread of its launch, so its
# grid is capped; seeding states is slow in the simulator, so it gets one block.
DROPOUT_BLOCKS = 1 if SIMULATOR else 64


def blocks_for(total, threads=THREADS):
    """Blocks of ``threads`` for ``total`` work items, for grid-stride loops."""
    return max(1, min(MAX_BLOCKS, -(-total // threads)))


class _SimulatorLaunch:
    """A launch configuration kept for later, under the simulator.

    The simulator's ``kernel[grid, block]`` stores the configuration on the
    kernel object itself and returns that object, so two configurations of
    one kernel kept side by side (a plan's GEMMs) would all launch with the
    last one set: a GEMM would then cover too few tiles. This applies its
    own configuration at every call instead."""

    def __init__(self, kernel, blocks, threads):
        self.kernel, self.blocks, self.threads = kernel, blocks, threads

    def __call__(self, *args):
        self.kernel[self.blocks, self.threads](*args)


def configure(kernel, blocks, threads):
    """``kernel[blocks, threads]``, configured once and launched many times.
    Small batches give small grids on purpose (those steps are bound by
    launch latency), so numba-cuda's low-occupancy warning is muted here."""
    if SIMULATOR:
        return _SimulatorLaunch(kernel, blocks, threads)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
        return kernel[blocks, threads]


def device_function(f):
    """The CPU's compiled function ``f`` (``@njit``, no explicit signature),
    callable from a kernel: on the GPU ``f`` itself, which numba.cuda
    compiles for the device from its source. Under the simulator, kernels
    run as Python and its arrays cannot enter compiled code, so there it is
    ``f``'s Python source, with the compiled functions it calls (and theirs)
    swapped for their Python source too."""
    return _python_source(f) if SIMULATOR else f


@functools.lru_cache(maxsize=None)
def _python_source(f):
    py = f.py_func
    names = dict(py.__globals__)
    for name in py.__code__.co_names:
        if isinstance(names.get(name), Dispatcher):
            names[name] = _python_source(names[name])
    return types.FunctionType(py.__code__, names, py.__name__, py.__defaults__, py.__closure__)


def planned(kernel, work, *args):
    """``(configured kernel, args)`` of a grid-stride kernel over ``work`` items: one entry of a plan."""
    return configure(kernel, blocks_for(work), THREADS), args
