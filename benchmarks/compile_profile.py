"""Where a cold start's compile time goes: every function Numba compiles, slowest first.

    python benchmarks/compile_profile.py            # an empty, temporary Numba cache
    python benchmarks/compile_profile.py --top 15

Runs the seeds' MLP (Adam, sparse categorical cross-entropy, accuracy) on 64
random rows: import, one fit, one predict, in a fresh process with an empty
cache. Prints the CPU seconds of each phase, then one line per compiled
function: its own compile time (nested compiles excluded), the time
including the functions it compiled on the way, the phase, and the name.
Everything compiles in that one process (``FASTNN_COMPILE_WORKERS=0``
unless set): what a compile worker built would not show.
Nothing here is asserted; the figures drift with the machine's load.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def profile(top):
    """Runs in the child process, whose NUMBA_CACHE_DIR is empty."""
    from numba.core import event

    stack, rows, phase = [], [], ["import"]

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append([ev.data["dispatcher"].py_func.__qualname__, time.perf_counter(), 0.0])

        def on_end(self, ev):
            name, t0, nested = stack.pop()
            total = time.perf_counter() - t0
            if stack:
                stack[-1][2] += total
            rows.append((total - nested, total, phase[0], name))

    event.register("numba:compile", Listener())
    cpu = {"start": _cpu()}
    import numpy as np
    import fastnn as keras
    cpu["import"] = _cpu()
    phase[0] = "fit"
    model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(300, activation="relu"),
                              keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    model.fit(x, y, epochs=1, verbose=0)
    cpu["fit"] = _cpu()
    phase[0] = "predict"
    model.predict(x, verbose=0)
    cpu["predict"] = _cpu()

    print(f"CPU s: import {cpu['import'] - cpu['start']:.2f} (Numba's own import included), "
          f"fit {cpu['fit'] - cpu['import']:.2f}, predict {cpu['predict'] - cpu['fit']:.2f}; "
          f"total {cpu['predict'] - cpu['start']:.2f}")
    rows.sort(reverse=True)
    print(f"{len(rows)} compiles, {sum(r[0] for r in rows):.2f} s in all (wall)")
    print(f"{'own s':>6} {'incl s':>6}  {'phase':8} function")
    for own, total, ph, name in rows[:top]:
        print(f"{own:6.2f} {total:6.2f}  {ph:8} {name}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top", type=int, default=30, help="functions to list")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        profile(args.top)
        return
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env.setdefault("FASTNN_COMPILE_WORKERS", "0")
        sys.exit(subprocess.call([sys.executable, __file__, "--child", "--top", str(args.top)], env=env))


if __name__ == "__main__":
    main()
