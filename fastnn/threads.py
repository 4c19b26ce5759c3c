"""How many threads the compiled loops use, and how those threads wait.

Numba's OpenMP pool spin-waits between parallel regions, which is the
fastest way to wait on an idle machine and the slowest on a busy one: a
training step at batch 32 is dozens of short parallel regions, and a
thread that spins while the core it waits for runs another process turns
each region into a scheduler time slice (measured: 18x slower epochs with
one other busy process on two cores). So, unless the user decides:

- waiting is bounded: before Numba starts its pool, ``GOMP_SPINCOUNT``
  is set so an idle thread spins about as long as the gap between two
  regions of a step, then sleeps (``configure_waiting``);
- the thread count follows the cores actually free: before each chunk of
  steps, ``ThreadChooser`` reads how much CPU time other processes took
  during the previous chunk (``/proc/stat``) and runs with that many fewer
  threads (at least one). Matrix products are still split into the same
  ``parts`` (one per thread of the full pool), so the results never depend
  on how many threads ran them.

A user's choice wins: ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in the
environment leaves waiting alone; ``NUMBA_NUM_THREADS`` in the
environment, ``numba.set_num_threads`` or ``fastnn.config.set_threads``
fixes the thread count.
"""
import contextlib
import os
import time

# Spins before an idle OpenMP thread sleeps: long enough to bridge the gaps
# between the parallel regions of one training step, short enough that a
# thread does not burn a time slice another process needs.
SPIN_COUNT = "10000"

_fixed_threads = None       # fastnn.config.set_threads(n)
_last_choice = None
_blas_controller = None


def configure_waiting():
    """Bounds OpenMP's spin-waiting unless the user set a wait policy (call before Numba's first parallel region)."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def set_threads(n):
    """Fixes the compiled loops' thread count (None: follow the free cores again)."""
    global _fixed_threads
    import numba
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"threads must be an integer in [1, {numba.config.NUMBA_NUM_THREADS}] (Numba's pool), "
                             f"got {n!r}")
    _fixed_threads = n


def parts():
    """Blocks each matrix product is split into: one per thread of the full pool, whatever runs them."""
    import numba
    return numba.config.NUMBA_NUM_THREADS


def _cpu_busy_seconds():
    """Seconds all CPUs spent busy since boot (user, nice, system, irq, softirq, steal), or None."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields[:8]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / os.sysconf("SC_CLK_TCK")


def busy_elsewhere(seconds=0.1):
    """CPUs' worth of work other processes did over the next ``seconds`` (this one sleeps
    meanwhile), from /proc/stat, or None where it cannot be read."""
    busy0, own0, t0 = _cpu_busy_seconds(), sum(os.times()[:2]), time.perf_counter()
    if busy0 is None:
        return None
    time.sleep(seconds)
    others = (_cpu_busy_seconds() - busy0) - (sum(os.times()[:2]) - own0)
    return max(0.0, others) / (time.perf_counter() - t0)


class ThreadChooser:
    """Picks the thread count for each chunk of steps of one run.

    Use ``n = chooser.begin()`` before a chunk and ``chooser.end()`` after
    it; ``n`` threads are set for Numba meanwhile. With a user's fixed
    count, or where /proc/stat cannot be read, it is always that count (or
    Numba's current one)."""

    def __init__(self):
        import numba
        self._numba = numba
        self.pool = numba.config.NUMBA_NUM_THREADS
        user = numba.get_num_threads()
        self.fixed = _fixed_threads or ("NUMBA_NUM_THREADS" in os.environ and user) or \
            (user if user < self.pool else None)
        self.fixed = self.fixed or (self.pool if self.pool == 1 or _cpu_busy_seconds() is None else None)
        self.threads = self.fixed or _last_choice or self.pool
        self._mark = None

    def begin(self):
        self._numba.set_num_threads(self.threads)
        if self.fixed is None:
            self._mark = (time.perf_counter(), _cpu_busy_seconds(), sum(os.times()[:2]))
        return self.threads

    def end(self):
        """After a chunk: the next chunk's threads from the cores the others left free."""
        global _last_choice
        if self.fixed is not None or self._mark is None:
            return
        t0, busy0, own0 = self._mark
        wall = time.perf_counter() - t0
        if wall < 0.02:          # too short to measure: keep the choice
            return
        others = (_cpu_busy_seconds() - busy0) - (sum(os.times()[:2]) - own0)
        free = self.pool - max(0.0, others) / wall
        # hysteresis: give a thread up when more than half a core is taken, take it back below a quarter
        wanted = self.threads
        if free < self.threads - 0.5:
            wanted = max(1, int(free + 0.5))
        elif free > self.threads + 0.75:
            wanted = min(self.pool, int(free + 0.25))
        self.threads = _last_choice = wanted

    def restore(self):
        """Gives Numba back the full pool (or the user's count) after the run."""
        self._numba.set_num_threads(self.fixed or self.pool)


@contextlib.contextmanager
def compiled_run():
    """While compiled loops run: Numba's pool owns the cores and every loaded
    BLAS is pinned to one thread (two pools on two cores spin against each
    other); the first run in a process warms one OpenBLAS buffer per thread
    of the pool (``blas.warm_buffers``). Yields the run's ``ThreadChooser``
    and restores both after."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController
        _blas_controller = ThreadpoolController()
    chooser = ThreadChooser()
    try:
        with _blas_controller.limit(limits=1, user_api="blas"):
            from .kernels.cpu.blas import warm_buffers
            warm_buffers(chooser.pool)
            yield chooser
    finally:
        chooser.restore()
