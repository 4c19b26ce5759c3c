"""Where a cold start's time goes: the phases to the first step, and every function Numba compiles.

    python benchmarks/compile_profile.py                 # everything in one process (no worker)
    python benchmarks/compile_profile.py --workers 1     # with the compile worker, as where a CPU is free
    python benchmarks/compile_profile.py --runs 3 --top 15
    python benchmarks/compile_profile.py --model cnn     # the CNN chapter's model (run_one.py's)

Runs the seeds' MLP (784-300-100-10, relu, softmax; Adam, sparse categorical
cross-entropy, accuracy; or run_one.py's CNN) in a fresh process with an empty Numba cache:
import, model build (Sequential and compile), one training step (fit on 32
rows, batch 32), then predict on 64 rows. Prints per run the wall and
main-process CPU seconds of each phase, the step split into compiling
(Numba's compiler, nested compiles counted once), loading what the worker
compiled from the cache, waiting for the worker, and the rest (the step
itself and fit's Python); the CPU seconds of the whole process tree (worker
included); then one line per function compiled or loaded before the first
step finished: its own compile seconds (nested compiles excluded), the part
of those spent in LLVM (optimising and emitting machine code; the rest is
Numba typing and lowering in Python), the seconds including what it
compiled on the way, its CPU seconds, where it compiled (``main``, or
``worker`` when this process loaded it from the cache the worker filled;
``loaded``: from the cache, no worker), the phase, and the name. With ``--runs`` above 1 a last
table gives the median of each phase. ``--workers`` sets
FASTNN_COMPILE_WORKERS (default 0: everything compiles in this process, so
every function shows). Nothing is asserted; the figures drift with the
machine's load, which each run prints (load average and the busiest other
processes).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def profile(model_kind):
    """Runs in the child process, whose NUMBA_CACHE_DIR is empty; prints one JSON line."""
    from numba.core import caching, event

    stack, rows, phase, compiled = [], [], ["import"], []

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append(dict(name=ev.data["dispatcher"].py_func.__qualname__, t0=time.perf_counter(), c0=_cpu(),
                              nested=0.0, nested_cpu=0.0, children=[]))

        def on_end(self, ev):
            frame = stack.pop()
            total, cpu = time.perf_counter() - frame["t0"], _cpu() - frame["c0"]
            if stack:
                stack[-1]["nested"] += total
                stack[-1]["nested_cpu"] += cpu
                stack[-1]["children"].append(len(rows))
            rows.append(dict(own=total - frame["nested"], total=total, cpu=cpu - frame["nested_cpu"], top=not stack,
                             where="main", phase=phase[0], name=frame["name"], llvm=0.0))
            compiled.append((len(rows) - 1, ev.data["dispatcher"], tuple(ev.data["args"]), frame["children"]))

    event.register("numba:compile", Listener())
    # Loads from the cache: what a compile worker built (the cache is empty at the start).
    original_load = caching.Cache.load_overload

    def timed_load(self, sig, target_context):
        t0, c0 = time.perf_counter(), _cpu()
        cres = original_load(self, sig, target_context)
        if cres is not None:
            rows.append(dict(own=time.perf_counter() - t0, total=time.perf_counter() - t0, cpu=_cpu() - c0,
                             top=not stack, where="loaded", phase=phase[0], name=self._py_func.__qualname__,
                             llvm=0.0))
        return cres

    caching.Cache.load_overload = timed_load

    wall, cpu = {"start": time.perf_counter()}, {"start": _cpu()}

    def mark(name):
        wall[name], cpu[name] = time.perf_counter(), _cpu()

    import numpy as np
    import fastnn as keras
    mark("import")
    from fastnn.kernels import prebuild
    waited = [0.0]
    original_ensure = prebuild.ensure

    def timed_ensure(dispatcher):
        t0 = time.perf_counter()
        original_ensure(dispatcher)
        waited[0] += time.perf_counter() - t0

    prebuild.ensure = timed_ensure

    phase[0] = "build"
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from run_one import keras_model
    model = keras_model(keras, model_kind)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    mark("build")
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1) if model_kind == "cnn" else (64, 784), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    phase[0] = "step"
    model.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0)
    mark("step")
    phase[0] = "predict"
    model.predict(x, verbose=0)
    mark("predict")
    # Numba times the LLVM calls of each compile (nested compiles included): its own share is LLVM's
    # optimisation and machine code, the rest Numba's typing and lowering in Python.
    llvm = {}
    for k, dispatcher, args, children in compiled:
        timers = (dispatcher.overloads[args].metadata or {}).get("timers", {})
        llvm[k] = timers.get("llvm_lock", 0.0)
    for k, dispatcher, args, children in compiled:
        rows[k]["llvm"] = llvm[k] - sum(llvm[c] for c in children)
    if prebuild.started():
        for r in rows:
            r["where"] = "worker" if r["where"] == "loaded" else r["where"]
    step_rows = [r for r in rows if r["phase"] == "step" and r["top"]]
    result = {
        "started": prebuild.started(),
        "wall": {k: wall[k] - wall[p] for p, k in zip(["start", "import", "build", "step"],
                                                      ["import", "build", "step", "predict"])},
        "cpu": {k: cpu[k] - cpu[p] for p, k in zip(["start", "import", "build", "step"],
                                                   ["import", "build", "step", "predict"])},
        "step_compile": sum(r["total"] for r in step_rows if r["where"] == "main"),
        "step_compile_cpu": sum(r["cpu"] for r in rows if r["phase"] == "step" and r["where"] == "main"),
        "step_load": sum(r["total"] for r in step_rows if r["where"] != "main"),
        "step_wait": waited[0],
        "rows": rows,
    }
    result["wall"]["to_first_step"] = wall["step"] - wall["start"]
    result["cpu"]["to_first_step"] = cpu["step"] - cpu["start"]
    result["step_rest"] = result["wall"]["step"] - result["step_compile"] - result["step_load"] - result["step_wait"]
    print(json.dumps(result))


def _machine():
    """The one-minute load average and the busiest processes of other users' and engineers' jobs."""
    ps = subprocess.run(["ps", "-eo", "pcpu,etimes,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    busy = [" ".join(line.split()[2:])[:70] + f" ({line.split()[0]}%)" for line in ps.splitlines()[1:6]
            if float(line.split()[0]) >= 10]
    return f"load {os.getloadavg()[0]:.2f}; busy: " + ("; ".join(busy) or "none >= 10%")


def run(workers, model_kind):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=ROOT)
        if workers is not None:
            env["FASTNN_COMPILE_WORKERS"] = workers
        before = _children_cpu()
        out = subprocess.run([sys.executable, __file__, "--child", "--model", model_kind], capture_output=True,
                             text=True, env=env, cwd=ROOT)
        tree = _children_cpu() - before
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["tree_cpu"] = tree
    return result


PHASES = ["import", "build", "step", "to_first_step", "predict"]


def report(k, r, top):
    w, c = r["wall"], r["cpu"]
    print(f"run {k}: worker {'started' if r['started'] else 'not started'}; whole tree {r['tree_cpu']:.2f} CPU s")
    print("  wall s: " + "  ".join(f"{p} {w[p]:.2f}" for p in PHASES))
    print("  CPU s:  " + "  ".join(f"{p} {c[p]:.2f}" for p in PHASES))
    print(f"  first step (wall s): compiling {r['step_compile']:.2f} ({r['step_compile_cpu']:.2f} CPU), "
          f"loading the worker's {r['step_load']:.2f}, waiting for it {r['step_wait']:.2f}, "
          f"the rest {r['step_rest']:.2f}")
    rows = sorted((x for x in r["rows"] if x["phase"] != "predict"), key=lambda x: -x["own"])
    print(f"  {len(rows)} functions before the first step's end, {sum(x['own'] for x in rows):.2f} s own (wall)")
    print(f"  {'own s':>6} {'LLVM s':>6} {'incl s':>6} {'CPU s':>6}  {'where':6} {'phase':6} function")
    for x in rows[:top]:
        print(f"  {x['own']:6.2f} {x['llvm']:6.2f} {x['total']:6.2f} {x['cpu']:6.2f}  {x['where']:6} {x['phase']:6} "
              f"{x['name']}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top", type=int, default=30, help="functions to list")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="run_one.py's model")
    p.add_argument("--workers", default="0", help="FASTNN_COMPILE_WORKERS for the runs ('default': leave unset)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        profile(args.model)
        return
    results = []
    for k in range(args.runs):
        print(f"before run {k + 1}: {_machine()}", flush=True)
        results.append(run(None if args.workers == "default" else args.workers, args.model))
        report(k + 1, results[-1], args.top)
        print(flush=True)
    if args.runs > 1:
        print(f"medians of {args.runs} runs")
        for what in ("wall", "cpu"):
            print(f"  {what:4} s: " + "  ".join(f"{p} {statistics.median(r[what][p] for r in results):.2f}"
                                               for p in PHASES))
        for key in ("step_compile", "step_compile_cpu", "step_load", "step_wait", "step_rest", "tree_cpu"):
            print(f"  {key} {statistics.median(r[key] for r in results):.2f}")


if __name__ == "__main__":
    main()
