"""Keras's progress bar: redrawn in place on a terminal, one line per epoch otherwise.

    1500/1500 [==============================] - 3s 2ms/step - loss: 0.6105 - accuracy: 0.7958
"""
import sys
import time


def _format_time(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def _per_step(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_values(values):
    return "".join(f" - {k}: {v:.4f}" for k, v in values)


class Progbar:
    """``target`` steps (None: unknown, as for a generator; shown as "Unknown");
    ``verbose`` 1 draws a bar, 2 prints only the final line."""

    def __init__(self, target, verbose=1, width=30, stream=None):
        self.target, self.verbose, self.width = target, verbose, width
        self.stream = stream if stream is not None else sys.stdout
        self.interactive = verbose == 1 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0

    def _bar(self, current):
        if self.target is None:
            return f"{current}/Unknown"
        digits = len(str(self.target))
        bar = f"{current:{digits}d}/{self.target} ["
        filled = int(self.width * current / self.target) if self.target else self.width
        if filled > 0:
            bar += "=" * (filled - 1) + (">" if current < self.target else "=")
        return bar + "." * (self.width - filled) + "]"

    def update(self, current, values=(), finalize=False):
        """Redraws at step ``current`` with ``values`` [(name, float)]."""
        now = time.perf_counter()
        elapsed = now - self.start
        if finalize:
            per = _per_step(elapsed / max(current, 1))
            if self.verbose == 1:
                line = f"{self._bar(current)} - {elapsed:.0f}s {per}{format_values(values)}"
            else:
                line = f"{current}/{self.target or 'Unknown'} - {elapsed:.0f}s - {per}{format_values(values)}"
            if self.interactive:
                self.stream.write("\r" + line.ljust(self._last_len) + "\n")
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
            return
        if not self.interactive or now - self._last_draw < 0.05:
            return
        self._last_draw = now
        if self.target is None:
            line = f"{self._bar(current)} - {_format_time(elapsed)}{format_values(values)}"
        else:
            eta = elapsed / max(current, 1) * (self.target - current)
            line = f"{self._bar(current)} - ETA: {_format_time(eta)}{format_values(values)}"
        self.stream.write("\r" + line.ljust(self._last_len))
        self._last_len = len(line)
        self.stream.flush()
