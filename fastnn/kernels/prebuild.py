"""The first run on a machine: compile kernels in a worker process meanwhile.

With an empty Numba cache the first ``fit`` compiles a dozen functions, several
seconds of one core, and a model's layer kinds (a CNN's convolution and pooling
parts) many seconds more. Numba's compiler holds one lock per process, so
threads cannot share that work; processes can. ``start`` (at ``import
fastnn``, when the cache does not hold the kernels) launches a worker that
compiles the kernels every CPU training run needs, whatever the model
(``_jobs``), into the on-disk cache, while this process finishes importing and
compiles the model's own parts. Once this process has written a model's
program it hands the worker the functions the program calls (``share``: a job
file in the claims directory naming each by module, qualified name and
signature, whose name goes down the worker's stdin); the worker takes them
from the end, before the rest of its own list (needed only after them), or,
with no list of its own left (a worker started for a model's new kinds), the
biggest first, while this process takes them in order, and waits on its stdin
for more until this process closes it or is gone. This process loads the
worker's results from the cache instead of compiling them.

Who compiles a function is decided once per function: the first process to
create its claim file (in a directory private to this process and its worker)
compiles it; the other waits for its done mark and loads it from the cache
(``ensure``; this process compiles meanwhile what nobody has claimed of the
worker's own list, from its end). The worker takes the functions fit needs
last first, this process takes them in fit's order, so they meet in the
middle. Two processes never compile one function at once: Numba reads,
changes and writes back a function's cache index without a lock, and two
specialisations saved at once could leave the index naming one's machine code
for the other.

A worker that fails or dies only costs time: its claim stays without a done
mark, and this process compiles that function itself once the worker is
gone; one still on a function after ``_WAIT_LIMIT_SECONDS`` is stopped. No
worker starts where no CPU is free for it (``_wanted``);
``FASTNN_COMPILE_WORKERS=0`` turns it off, ``=1`` on. A forked child neither
waits for the worker nor hands it work.
"""
import atexit
import importlib
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .. import threads

_ENV = "FASTNN_COMPILE_WORKERS"
_POLL_SECONDS = 0.005
# A worker still on one function after this long is taken to hang: it is stopped and this process compiles.
_WAIT_LIMIT_SECONDS = 120

# The worker imports the kernels without ``fastnn/__init__.py`` (the layers,
# models and the rest of the package, which it does not need): a bare package
# object stands in for ``fastnn``, and its subpackages import as usual.
_BOOT = """
import sys, types
package = types.ModuleType("fastnn")
package.__path__ = [sys.argv[1]]
sys.modules["fastnn"] = package
from fastnn.kernels import prebuild
prebuild.work(sys.argv[2], own_jobs=sys.argv[3] == "1")
"""


def _jobs():
    """(dispatcher, signature) of each kernel every CPU training run needs
    whatever the model, in the order a worker compiles them: the ones fit
    needs last first (fit takes them in its own order), then the parts that
    predict alone uses. Signatures exactly as the callers compile them (a
    Signature for ``pointers.function_pointer``, argument types for a call
    from Python), since Numba's cache keys entries by them."""
    from .cpu import activations, constraints, engine, optimizers, regularizers
    return [(engine.run_steps, engine.LOOP_TYPES),
            (optimizers.parallel_update, optimizers.PARALLEL_UPDATE_SIG),
            (optimizers.prepare_nothing, optimizers.PREPARE_SIG),
            (constraints.no_constraints, constraints.CONSTRAIN_SIG),
            (regularizers.no_penalty, regularizers.PENALTY_SIG),
            (engine._dense_backward_block, engine.BLOCK_SIG),
            (engine._activation_backward_block, engine.BLOCK_SIG),
            (engine._dense_forward_by_columns, engine.BLOCK_SIG),
            (engine._parallel, engine._PARALLEL_SIG),
            (activations.no_elementwise, activations.ACTIVATION_SIG),
            (engine.backward, engine._BACKWARD_SIG),
            (engine.forward, engine._FORWARD_SIG),
            (engine.no_backward, engine._BACKWARD_SIG),
            (optimizers.no_parallel_update, optimizers.PARALLEL_UPDATE_SIG),
            (optimizers.no_update, optimizers.UPDATE_SIG),
            (engine._dense_forward_by_rows, engine.BLOCK_SIG)]


def _key(dispatcher):
    py = dispatcher.py_func
    return f"{py.__module__}.{py.__qualname__}"


def _resolve(module, qualname):
    """The dispatcher named ``qualname`` in ``module`` (imported), or None (not found, not a dispatcher)."""
    try:
        found = importlib.import_module(module)
        for name in qualname.split("."):
            found = getattr(found, name)
    except (ImportError, AttributeError):
        return None
    return found if hasattr(found, "py_func") else None


def _claim(directory, key, owner):
    """Creates ``key``'s claim file holding ``owner``; False when another process made it first."""
    try:
        fd = os.open(os.path.join(directory, key), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, owner.encode())
    os.close(fd)
    return True


def _done_path(directory, key):
    return os.path.join(directory, key + ".done")


def _cached(dispatcher):
    """Whether Numba's cache holds an entry of ``dispatcher`` for the current kernel sources."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:     # another Numba's internals, an unreadable index: say cached, start nothing
        return True


def _wanted():
    """Whether to start a worker: never with ``FASTNN_COMPILE_WORKERS=0``, always with another value;
    by default when a CPU is free for it: this process may use two or more, and other processes keep
    less than all the machine's CPUs but one and a half busy (measured over 0.1 s from /proc/stat;
    where that cannot be read, the one-minute load average below the CPU count minus one). Where no
    CPU is free, a worker only takes turns with this process and adds its own import to the wait
    (measured at load average about 3 on two cores: 20.5-30.9 s to the first step with one, against
    17.0-25.3 s for the code before issue 22's cold-start work). The load average alone lags by a
    minute: right after another job ends it still refused a worker to an idle machine."""
    text = os.environ.get(_ENV)
    if text is not None:
        return text.strip() != "0"
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return False
    machine = os.cpu_count() or cpus
    others = threads.busy_elsewhere()
    if others is not None:
        return others < machine - 1.5
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):     # no load average (Windows): assume a free CPU
        load = 0.0
    return load < machine - 1


class _Run:
    """This process's compile worker: its process, the claims directory, the functions it may take
    (its own list and those shared with it), the names of the job files it was given, whether it
    started at import (some model-independent kernel not cached) or for a model's new kinds
    (``share``), and whether the loop itself was missing then."""

    def __init__(self, directory, worker, jobs, at_import, loop_missing):
        self.directory, self.worker = directory, worker
        self.at_import, self.loop_missing = at_import, loop_missing
        self.keys = {_key(dispatcher) for dispatcher, _ in jobs}
        self.spare = list(jobs)      # its own jobs this process may take while it waits for the worker
        self.pid = os.getpid()
        self.settled = set()
        self.shared = []


_run = None


def start():
    """Starts the compile worker when the cache lacks the model-independent
    kernels (the first run on a machine, or after an upgrade) and workers are
    allowed; otherwise does nothing. Returns whether one started."""
    global _run
    if _run is not None or os.environ.get(_ENV, "").strip() == "0":
        return False
    jobs = _jobs()
    missing = [dispatcher for dispatcher, _ in jobs if not _cached(dispatcher)]
    if not missing or not _wanted():   # _wanted() takes 0.1 s
        return False
    # the loop itself missing: a first run on this machine (``first_run``)
    _run = _spawn(jobs, at_import=True, loop_missing=jobs[0][0] in missing)
    return _run is not None


def _spawn(jobs, at_import, loop_missing=False):
    """A started worker process (its ``_Run``) with ``jobs`` its own, or None where none can start."""
    directory = tempfile.mkdtemp(prefix="fastnn-compile-")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **{_ENV: "0"})
    try:
        worker = subprocess.Popen([sys.executable, "-c", _BOOT, str(Path(__file__).resolve().parents[1]), directory,
                                   "1" if at_import else "0"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=env)
    except OSError:   # no interpreter to start (an embedded Python): compile here
        shutil.rmtree(directory, ignore_errors=True)
        return None
    atexit.register(_stop)
    return _Run(directory, worker, jobs, at_import, loop_missing)


def ensure(dispatcher):
    """Call before this process compiles (or loads) ``dispatcher``: when the
    worker has taken it, waits until the worker is done with it (then it is in
    the cache) or gone; when not, claims it, so the worker will not take it."""
    run = _run
    if run is None or run.pid != os.getpid():    # no worker, or a forked child that does not own it
        return
    if not hasattr(dispatcher, "py_func"):       # a stand-in for the kernel (a test's counting wrapper)
        return
    key = _key(dispatcher)
    if key not in run.keys or key in run.settled:
        return
    if _claim(run.directory, key, "main"):
        run.settled.add(key)
        return
    done = _done_path(run.directory, key)
    deadline = time.monotonic() + _WAIT_LIMIT_SECONDS
    while not os.path.exists(done) and run.worker.poll() is None:
        if time.monotonic() > deadline:
            run.worker.kill()
            run.worker.wait()
            break
        if not _compile_meanwhile(run):
            _pause()
    run.settled.add(key)


def _compile_meanwhile(run):
    """Compiles the last of the worker's own jobs nobody has claimed (this
    process needs them after what it waits for; the worker takes them from
    the front, the biggest first): a wait spent compiling, one small function
    at a time. Returns whether it compiled one; False once none is left."""
    from ..utils.interrupts import held_interrupts
    while run.spare:
        dispatcher, sig = run.spare.pop()
        key = _key(dispatcher)
        if key not in run.settled and _claim(run.directory, key, "main"):
            run.settled.add(key)
            with held_interrupts():   # as pointers.function_pointer: a Ctrl-C must not cut a compile
                dispatcher.compile(sig)
            return True
    return False


def share(functions):
    """Hands the worker ``functions`` ((dispatcher, signature) pairs in the
    order this process will compile them: what a model's program calls, or
    the optimizer's update) when a worker runs for this process. It takes
    them from the end once done with the function it is on, this process
    takes them in order (``ensure``). Functions
    this process or the cache already holds, those the worker builds anyway
    and those it cannot find by name (defined inside a function) are left out.

    Where no worker runs because the model-independent kernels were cached, a
    model of kinds new to this machine still has them to compile (an LSTM's
    forward and backward functions: about 25 s each on the project's machine):
    with two or more to compile, a worker starts for them where a CPU is free
    (as at import, ``_wanted``).

    Returns whether any of ``functions`` is still to be compiled (by either process)."""
    global _run
    run = _run
    own = run.keys if run is not None else set()
    jobs, keys = [], set()
    for dispatcher, sig in functions:
        if not hasattr(dispatcher, "py_func"):
            continue
        key, py = _key(dispatcher), dispatcher.py_func
        if key in own or key in keys or sig.args in dispatcher.overloads or _cached(dispatcher) or \
                _resolve(py.__module__, py.__qualname__) is not dispatcher:
            continue
        jobs.append((py.__module__, py.__qualname__, sig))
        keys.add(key)
    if not jobs or (run is not None and (run.pid != os.getpid() or run.worker.poll() is not None)):
        return bool(jobs)
    if run is None:
        if len(jobs) < 2 or not _wanted():
            return True
        run = _run = _spawn([], at_import=False)
        if run is None:
            return True
    # Pickled, as Numba's cache index pickles the same signatures (the directory is this user's, from
    # mkdtemp); the file's name goes down the worker's stdin once it is written. Keys have no "-".
    name = f"jobs-{len(run.shared)}"
    with open(os.path.join(run.directory, name), "wb") as f:
        pickle.dump(jobs, f)
    try:
        run.worker.stdin.write(name.encode() + b"\n")
        run.worker.stdin.flush()
    except OSError:     # the worker is gone (a broken pipe): this process compiles them
        return True
    run.shared.append(name)
    run.keys |= keys
    return True


def running():
    """Whether a compile worker runs for this process: then ``share`` hands it work and starts none
    (``Model.compile`` hands it the optimizer's update only then)."""
    run = _run
    return run is not None and run.pid == os.getpid() and run.worker.poll() is None


def _pause():
    """One poll interval of ``ensure``'s wait (its own function: tests act during a wait through it)."""
    time.sleep(_POLL_SECONDS)


def started():
    """Whether this process started a compile worker at import (some model-independent kernel was not cached)."""
    return _run is not None and _run.at_import


def first_run():
    """Whether this process started its worker at import because the training loop itself was not
    cached: the first run on this machine (or of this version), which compiles for several seconds
    even once the worker has saved the loop."""
    return started() and _run.loop_missing


def _stop():
    """At exit: stops the worker (Numba writes cache files under temporary names
    and renames them, so a stopped worker leaves no half-written entry)."""
    run = _run
    if run is None or run.pid != os.getpid():
        return
    if run.worker.poll() is None:
        run.worker.kill()
    run.worker.wait()
    run.worker.stdin.close()
    shutil.rmtree(run.directory, ignore_errors=True)


def work(directory, own_jobs=True):
    """The worker: compiles the functions of each job file (``share``) from
    the end as soon as its name comes on stdin (once its own are done, the
    biggest first: ``_bytecode_size``), and in between, with ``own_jobs`` (a
    worker started at import), its own jobs (the first process needs those
    only once its model's parts are linked).
    The end of stdin (the process that started it closed it or is gone) ends
    it once nothing is left; waiting there costs no CPU."""
    names = queue.Queue()      # a thread reads stdin, so that the worker sees a name between two compiles

    def read_names():
        for line in sys.stdin:
            names.put(line.strip())
        names.put(None)

    threading.Thread(target=read_names, daemon=True).start()
    own, shared, more = _jobs()[::-1] if own_jobs else [], [], True
    while own or shared or more:
        while more and (not names.empty() or not (own or shared)):     # with nothing to do: wait for a name
            name = names.get()
            if name is None:
                more = False
                continue
            with open(os.path.join(directory, name), "rb") as f:
                shared += [(_resolve(module, qualname), sig) for module, qualname, sig in pickle.load(f)]
            if not own:
                shared.sort(key=_bytecode_size)
        dispatcher, sig = shared.pop() if shared else own.pop() if own else (None, None)
        if dispatcher is not None:
            _build(directory, dispatcher, sig)


def _bytecode_size(job):
    """The size of a shared job's Python bytecode: a rough measure of its compile time. A worker with
    no jobs of its own takes the biggest first, so that the first process, which compiles the
    model's functions in order, does not end up waiting for a big one the worker took last. An
    import-time worker keeps the given order, interleaved with its own jobs: there the biggest
    first made the first run slower (figures in the commit that made this choice)."""
    dispatcher = job[0]
    return len(dispatcher.py_func.__code__.co_code) if dispatcher is not None else 0


def _build(directory, dispatcher, sig):
    """Compiles ``dispatcher`` for ``sig`` into the cache unless it is there or
    claimed, marking it done (compiled and saved, or failed: then the main
    process compiles it)."""
    key = _key(dispatcher)
    if _cached(dispatcher) or not _claim(directory, key, "worker"):
        return
    try:
        dispatcher.compile(sig)
    except Exception:
        pass
    finally:
        open(_done_path(directory, key), "w").close()
