"""Side-by-side table: fastnn vs PyTorch vs Keras on the seeds' MLP or the CNN chapter's model (MNIST, Adam).

    python benchmarks/compare.py                      # MLP: batch 32, 128, 1024; 3 timed epochs each
    python benchmarks/compare.py --batches 32 --epochs 2 --torch-python /path/to/python
    python benchmarks/compare.py --model cnn          # the CNN (issue 17): batch 32 and 128
    python benchmarks/compare.py --busy 1 --policies  # one spinning process; fastnn's thread settings too
    python benchmarks/compare.py --model lstm --torch-python /path/to/python   # the text chapter's LSTM

``--model lstm`` times the issue-18 IMDB model (run_lstm.py: Embedding, two LSTM(8), batch 64, 20,000
sequences of 100 ids) against PyTorch and Keras, alternating process by process for ``--rounds`` rounds.

Each (framework, batch) runs in its own process (run_one.py), frameworks
alternating, so import time, first-step latency and peak RSS are each
framework's own. A framework that is not importable by its interpreter is
skipped. Epoch figures are medians of the timed epochs; ratios are fastnn
divided by the other framework, from this one run.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# fastnn's thread settings compared by --policies: the default, then what a user could set instead.
POLICIES = {"fastnn": {}, "fastnn passive": {"OMP_WAIT_POLICY": "passive"},
            "fastnn 1 thread": {"NUMBA_NUM_THREADS": "1"}}
SPIN = "while True: pass"


def available(python, module):
    """Whether ``python`` (a path; a missing one counts as no) imports ``module``."""
    try:
        return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0
    except OSError:
        return False


def run(python, framework, batch, epochs, n_train, cache_dir=None, extra_env=None, label=None, model="mlp"):
    cmd = [python, str(HERE / "run_one.py"), framework, "--batch", str(batch), "--epochs", str(epochs),
           "--n-train", str(n_train), "--model", model]
    env = None
    if framework == "fastnn":
        env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   **(extra_env or {}))
        if cache_dir is not None:
            env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} batch {batch} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["framework"] = label or framework
    return result


def machine():
    """The CPU's model name and how many CPUs this process may use, for the table's heading."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cpus} CPUs"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=None,
                   help="default: 32 128 1024 (MLP), 32 128 (CNN)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=60000)
    p.add_argument("--torch-python", default=sys.executable)
    p.add_argument("--keras-python", default=sys.executable)
    p.add_argument("--json", help="also write all raw results to this file")
    p.add_argument("--busy", type=int, default=0,
                   help="run this many single-threaded spinning processes during the measurement")
    p.add_argument("--policies", action="store_true",
                   help="also time fastnn with OMP_WAIT_POLICY=passive and with one thread")
    p.add_argument("--model", choices=["mlp", "cnn", "lstm"], default="mlp")
    p.add_argument("--rounds", type=int, default=3, help="(lstm) alternating rounds of one process each")
    p.add_argument("--imdb", help="(lstm) Keras's imdb.npz; default synthetic data of its shape")
    args = p.parse_args()
    if args.batches is None:
        args.batches = [32, 128] if args.model == "cnn" else [32, 128, 1024]
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.busy)]
    try:
        if args.model == "lstm":
            return compare_lstm(args)
        report(args)
    finally:
        for proc in spinners:
            proc.kill()


def report(args):
    frameworks = [("fastnn", sys.executable)]
    if args.policies:
        frameworks += [(name, sys.executable) for name in POLICIES if name != "fastnn"]
    for name, python, module in (("torch", args.torch_python, "torch"), ("keras", args.keras_python, "keras")):
        if available(python, module):
            frameworks.append((name, python))
        else:
            print(f"# {name}: not importable with {python}, skipped")
    with tempfile.TemporaryDirectory() as empty_cache:
        cold = run(sys.executable, "fastnn", args.batches[0], 0, args.n_train, cache_dir=empty_cache, model=args.model)
    results = []
    for batch in args.batches:
        for name, python in frameworks:
            framework = "fastnn" if name in POLICIES else name
            r = run(python, framework, batch, args.epochs, args.n_train, extra_env=POLICIES.get(name), label=name,
                    model=args.model)
            results.append(r)
            print(f"# {name:6s} batch {batch:5d}: epochs {', '.join(f'{t:.3f}' for t in r['epochs'])} s",
                  file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))

    names = [n for n, _ in frameworks]
    busy = f"; {args.busy} spinning process(es) running" if args.busy else "; no other load started"
    what = "the CNN chapter's model (Conv2D 32, MaxPooling2D, Conv2D 64, MaxPooling2D, Dense 100, Dropout, " \
        "Dense 10)" if args.model == "cnn" else "seeds' MLP 784-300-100-10"
    print(f"\n{what}, Adam, {results[0]['n_train']} {results[0]['data']} images; "
          f"median seconds per epoch of {args.epochs}{busy} (the process's CPU seconds in brackets); {machine()}")
    head = "| batch | " + " | ".join(names) + " | " + " | ".join(f"fastnn / {n}" for n in names[1:]) + " |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for batch in args.batches:
        med = {r["framework"]: statistics.median(r["epochs"]) for r in results if r["batch"] == batch}
        cpu = {r["framework"]: statistics.median(r.get("cpu_epochs") or [0]) for r in results if r["batch"] == batch}
        cells = [f"{med[n]:.3f} ({cpu[n]:.1f})" for n in names] + [f"{med['fastnn'] / med[n]:.2f}" for n in names[1:]]
        print(f"| {batch} | " + " | ".join(cells) + " |")
    print("\n| framework | import s | first step s (from import) | predict 10k s | peak RSS MB | test acc |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in names:
        rs = [r for r in results if r["framework"] == n]
        print(f"| {n} | {statistics.median(r['import_s'] for r in rs):.2f} | "
              f"{statistics.median(r['first_step_s'] for r in rs):.2f} | "
              f"{statistics.median(r['predict_s'] for r in rs):.3f} | "
              f"{max(r['peak_rss_mb'] for r in rs):.0f} | {rs[0]['test_accuracy']:.4f} |")
    print(f"\nfastnn cold (empty Numba cache): import {cold['import_s']:.2f} s, import to first step "
          f"{cold['first_step_s']:.2f} s, first predict {cold['first_predict_s']:.2f} s; "
          f"total compile wait {cold['first_step_s'] + cold['first_predict_s']:.2f} s")


def compare_lstm(args):
    frameworks = [("fastnn", sys.executable)]
    for name, python in (("torch", args.torch_python), ("keras", args.keras_python)):
        if available(python, name):
            frameworks.append((name, python))
        else:
            print(f"# {name}: not importable with {python}, skipped")
    results = []
    for _ in range(args.rounds):
        for name, python in frameworks:
            cmd = [python, str(HERE / "run_lstm.py"), name, "--epochs", str(args.epochs)]
            if args.imdb:
                cmd += ["--imdb", args.imdb]
            env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{out.stderr[-2000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"# {name:6s}: epochs {', '.join(f'{t:.2f}' for t in r['epochs'])} s, first step "
                  f"{r['first_step_s']:.2f} s from import", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    names = [n for n, _ in frameworks]
    med = {n: statistics.median(t for r in results if r["framework"] == n for t in r["epochs"]) for n in names}
    print(f"\nIMDB LSTM (Embedding 500x16, LSTM 8 + LSTM 8, dropout 0.3), {results[0]['n_train']} "
          f"{results[0]['data']} sequences of 100, batch 64; median seconds per epoch over "
          f"{args.rounds} alternating rounds of {args.epochs}")
    head = "| model | " + " | ".join(names) + " | " + " | ".join(f"fastnn / {n}" for n in names[1:]) + " |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    print("| LSTM, batch 64 | " + " | ".join(f"{med[n]:.2f}" for n in names) + " | " +
          " | ".join(f"{med['fastnn'] / med[n]:.2f}" for n in names[1:]) + " |")


if __name__ == "__main__":
    main()
