"""Numba cache invalidation for the kernels as a whole.

Numba stamps a cached function with the hash of its own source file only.
Our kernels call each other across files (``engine.py`` inlines
``optimizers.py``'s update), so editing one file would leave callers in
other files running stale machine code from the cache. This locator stamps
every kernel with one hash of all kernel sources, so any change to any
kernel recompiles them all. Functions outside ``fastnn/kernels`` keep
Numba's own locators.
"""
import hashlib
import os
import sys
from pathlib import Path

from numba.core import caching

KERNEL_DIR = Path(__file__).resolve().parent


def _tree_hash():
    h = hashlib.sha256()
    for path in sorted(KERNEL_DIR.rglob("*.py")):
        h.update(str(path.relative_to(KERNEL_DIR)).encode())
        h.update(path.read_bytes())
    return h.digest()


_TREE_HASH = _tree_hash()
_extra = []


def extend_stamp(text):
    """Adds a choice made at import (e.g. which BLAS the GEMM calls) to the
    stamp, so cached code built for another choice is not reused. Must run
    before any kernel is compiled or loaded."""
    _extra.append(text)


def stamp():
    return _TREE_HASH + "|".join(_extra).encode()


class _TreeStamp:
    def get_source_stamp(self):
        return stamp()


_STAMPED = [type(f"Kernel{cls.__name__}", (_TreeStamp, cls), {})
            for cls in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                        caching.UserWideCacheLocator)]


class KernelTreeLocator:
    """First locator consulted: takes functions defined under fastnn/kernels."""

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            Path(py_file).resolve().relative_to(KERNEL_DIR)
        except (ValueError, OSError):
            return None
        for locator_cls in _STAMPED:
            locator = locator_cls.from_function(py_func, py_file)
            if locator is not None:
                return locator
        return None


def install():
    """Puts ``KernelTreeLocator`` first in Numba's locator chain (once)."""
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl   # renamed in Numba 0.61
    classes = impl._locator_classes
    if KernelTreeLocator not in classes:
        classes.insert(0, KernelTreeLocator)


install()


_announced = False
_verbose = 1    # the latest fit's, evaluate's or predict's (announce_compile records it for the model's build)


def announce_compile(verbose):
    """Prints, once per process and unless ``verbose`` is 0, a line to stderr
    when the training loop is neither compiled in this process nor in the
    on-disk cache: the first run on a machine compiles for several seconds,
    which would otherwise look like a hang before an empty progress bar.
    Call it before the call builds the model's program."""
    global _announced, _verbose
    _verbose = verbose
    if not verbose or _announced:
        return
    if _loop_ready():
        return
    _announced = True
    print(LOOP_NOTICE, file=sys.stderr, flush=True)


def announce_layer_compile():
    """The same for a model whose program calls functions that are neither compiled nor cached
    (layer kinds new to this machine: an LSTM's take half a minute), unless the loop's line was
    printed or the call under way is quiet."""
    global _announced
    if not _verbose or _announced:
        return
    _announced = True
    print(LAYER_NOTICE, file=sys.stderr, flush=True)


LOOP_NOTICE = "fastnn: compiling kernels for this model; first run on this machine only (a few seconds)"
LAYER_NOTICE = "fastnn: compiling kernels for this model's layers; first use of them on this machine only"


def _loop_ready():
    """Whether the training loop is compiled in this process or cached on disk (and no compile worker started
    for want of it: then this is a first run, compiling, even once the worker has saved the loop)."""
    from . import prebuild
    from .cpu.engine import run_steps
    if prebuild.first_run():
        return False
    return bool(run_steps.overloads) or _cached_on_disk(run_steps)


def _cached_on_disk(dispatcher):
    """Whether Numba's cache holds an index for ``dispatcher`` (then loading it takes well under a second)."""
    try:
        return os.path.exists(dispatcher._cache._cache_file._index_path)
    except AttributeError:      # another Numba's internals: say nothing rather than guess
        return True
