"""Which device trains (``set_device``), and how many CPU threads train (``num_threads``).

``set_device("cuda")`` sends ``fit``, ``evaluate`` and ``predict`` to the
``numba.cuda`` kernels in ``fastnn.kernels.cuda``; ``with fastnn.device("cpu"):``
does it for a block of code. ``"auto"`` picks CUDA only when ``numba.cuda``
imports and ``numba.cuda.is_available()`` says a GPU is usable (Numba's CUDA
simulator, ``NUMBA_ENABLE_CUDASIM=1``, counts as one), else the CPU.

This module never imports ``numba.cuda`` when imported, and "auto" first looks
for the CUDA driver library without importing anything, so ``import fastnn``
and CPU training pay nothing for the CUDA path on a machine without a GPU.
"""
import contextlib
import ctypes
import os
import sys

# -- CPU threads ----------------------------------------------------------------
# Numba fixes the size of its thread pool once, from NUMBA_NUM_THREADS or else the
# CPUs of the process's affinity mask, when numba is imported. fastnn adds one rule
# before that: OMP_NUM_THREADS, when set, is the default. fastnn's threads are
# OpenMP threads, and it is how process managers say "this many cores are yours":
# Dask's nanny starts every worker with OMP_NUM_THREADS=1 (its threads_per_worker
# slots are its cores), as do SLURM-style schedulers. Without it, each Dask worker
# on a 2-core machine started 2 spinning threads, and two workers' pools fought
# for the cores: a 40-step fit took 1.9-3.0 s instead of 6-9 ms.
_thread_source = None


def _size_threads_from_environment():
    """Sets NUMBA_NUM_THREADS from OMP_NUM_THREADS (when only the latter is set),
    before numba is imported. Runs once, first thing in ``import fastnn``."""
    global _thread_source
    if _thread_source is not None:
        return
    if "NUMBA_NUM_THREADS" in os.environ:
        _thread_source = "NUMBA_NUM_THREADS"
    elif "numba" in sys.modules:
        # numba has read its settings: changing the variable now would make it refuse
        # (RuntimeError) once its pool runs. Its own choice stands.
        _thread_source = "numba (imported before fastnn)"
    else:
        omp = _positive_int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
        if omp is not None:
            os.environ["NUMBA_NUM_THREADS"] = str(min(omp, _affinity_cpus()))
            _thread_source = "OMP_NUM_THREADS"
        else:
            _thread_source = "CPU affinity"


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value > 0 else None


def _affinity_cpus():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:      # macOS, Windows: no affinity masks
        return max(1, os.cpu_count() or 1)


def num_threads():
    """``(threads, source)``: the size of the thread pool that trains on the CPU
    in this process, and what set it.

    The rule, first match wins, read once when fastnn is imported:

    1. ``NUMBA_NUM_THREADS`` (Numba's own variable), when set;
    2. ``OMP_NUM_THREADS``, when set (capped at the CPUs the process may use):
       Dask's nanny sets it to 1 in each worker process, so each of Dask's
       worker threads trains on one core, and workers never spin against each
       other; ``LocalCluster(..., env={"NUMBA_NUM_THREADS": "4"})`` or the
       variable in a ``dask worker``'s environment gives a worker more;
    3. the CPUs of the process's affinity mask (``taskset``, cgroup cpusets,
       ``docker --cpuset-cpus``), Numba's default.

    Within the pool, each run uses as many threads as the cores other
    processes leave free, or the count ``set_threads(n)`` fixes
    (``fastnn.threads``). The pool's size also sets how each matrix product
    is split, so it changes the last bits of results: compare runs made with
    the same pool size."""
    import numba
    return numba.config.NUMBA_NUM_THREADS, _thread_source or "CPU affinity"


# -- device ---------------------------------------------------------------------

_NAMES = ("cpu", "cuda", "auto")
_choice = "auto"
_cuda_status = None      # (available, reason), probed once per process


def _driver_library_loads():
    """True when a CUDA driver library can be loaded (without importing numba.cuda)."""
    names = [os.environ["NUMBA_CUDA_DRIVER"]] if os.environ.get("NUMBA_CUDA_DRIVER") else []
    if sys.platform.startswith("win"):
        names.append("nvcuda.dll")
    elif sys.platform.startswith("linux"):
        names += ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _probe_cuda():
    """(available, reason): reason says why CUDA cannot be used, "" when it can."""
    from numba.core import config as numba_config
    if not numba_config.ENABLE_CUDASIM and not _driver_library_loads():
        return False, "no CUDA driver library (libcuda) was found: this machine has no usable NVIDIA driver"
    try:
        from numba import cuda
    except Exception as exc:  # an incomplete or broken CUDA install must not break CPU users
        return False, f"numba.cuda could not be imported ({exc}); install fastnn[cuda]"
    try:
        if cuda.is_available():
            return True, ""
    except Exception as exc:
        return False, f"numba.cuda.is_available() failed ({exc})"
    return False, "numba.cuda.is_available() is False: no usable CUDA GPU or toolkit was found"


def cuda_available():
    """True when training can run on CUDA here (probed once, then cached)."""
    global _cuda_status
    if _cuda_status is None:
        _cuda_status = _probe_cuda()
    return _cuda_status[0]


def _check_name(name):
    if not isinstance(name, str) or name.lower() not in _NAMES:
        raise ValueError(f"device must be one of {list(_NAMES)}, got {name!r}")
    return name.lower()


def set_device(name):
    """Chooses the device for later ``fit`` / ``evaluate`` / ``predict`` calls.

    ``name``: "cpu", "cuda" or "auto" (CUDA when usable, else CPU).
    Asking for "cuda" where it cannot run raises RuntimeError saying why."""
    global _choice
    name = _check_name(name)
    if name == "cuda" and not cuda_available():
        raise RuntimeError(f"set_device('cuda'): CUDA cannot be used here: {_cuda_status[1]}. "
                           "Use set_device('cpu') or 'auto' to train on the CPU.")
    _choice = name


def chosen_device():
    """What was asked for: "cpu", "cuda" or "auto" (unresolved)."""
    return _choice


def get_device():
    """The device the next ``fit`` runs on: "cpu" or "cuda" ("auto" resolved)."""
    if _choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    return _choice


@contextlib.contextmanager
def device(name):
    """``with fastnn.device("cuda"):`` trains on ``name`` inside the block and
    restores the previous choice after it, also when the block raises."""
    global _choice
    previous = _choice
    set_device(name)
    try:
        yield
    finally:
        _choice = previous


def set_threads(n):
    """Fixes how many threads the compiled loops use (``None``: follow the
    cores other processes leave free, the default; see ``fastnn.threads``)."""
    from . import threads
    threads.set_threads(n)


__all__ = ["cuda_available", "device", "get_device", "set_device", "set_threads"]


def __dir__():   # dir() shows the public names, not the modules this one imports
    return __all__
