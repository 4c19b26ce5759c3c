"""Holding Ctrl-C (SIGINT) over work that must not stop half-way.

Python raises ``KeyboardInterrupt`` at whatever bytecode runs when the signal
arrives: inside Numba's compiler it can leave a function half compiled (the
process then cannot train), inside a ``__del__`` of h5py's objects it is
printed as "Exception ignored" and lost. ``held_interrupts`` records the
signal instead and raises it when the block ends, so the caller still gets it.
"""
import signal
import threading


class held_interrupts:
    """``with held_interrupts() as held:`` records SIGINT in ``held.pending``
    and raises ``KeyboardInterrupt`` on a clean exit of the block if one came.

    Only in the main thread and over Python's default handler (a user's own
    handler is left alone); nested blocks pass the signal to the outermost."""

    def __enter__(self):
        self.pending, self._previous = False, None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame):
        self.pending = True

    def __exit__(self, kind, value, tb):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if self.pending and kind is None:
            raise KeyboardInterrupt
        return False
