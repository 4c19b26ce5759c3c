"""Side-by-side table: fastnn vs PyTorch vs Keras on the seeds' MLP or the CNN chapter's model (MNIST, Adam).

    python benchmarks/compare.py                      # MLP: batch 32, 128, 1024; 3 timed epochs each
    python benchmarks/compare.py --batches 32 --epochs 2 --torch-python /path/to/python
    python benchmarks/compare.py --model cnn          # the CNN: batch 32 and 128

Each (framework, batch) runs in its own process (run_one.py), frameworks
alternating, so import time, first-step latency and peak RSS are each
framework's own. A framework that is not importable by its interpreter is
skipped. Epoch figures are medians of the timed epochs; ratios are fastnn
divided by the other framework, from this one run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available(python, module):
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def run(python, framework, batch, epochs, n_train, cache_dir=None, model="mlp"):
    cmd = [python, str(HERE / "run_one.py"), framework, "--batch", str(batch), "--epochs", str(epochs),
           "--n-train", str(n_train), "--model", model]
    env = None
    if framework == "fastnn":
        env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if cache_dir is not None:
            env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} batch {batch} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=None,
                   help="default: 32 128 1024 (MLP), 32 128 (CNN)")
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=60000)
    p.add_argument("--torch-python", default=sys.executable)
    p.add_argument("--keras-python", default=sys.executable)
    p.add_argument("--json", help="also write all raw results to this file")
    args = p.parse_args()
    if args.batches is None:
        args.batches = [32, 128] if args.model == "cnn" else [32, 128, 1024]

    frameworks = [("fastnn", sys.executable)]
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
            r = run(python, name, batch, args.epochs, args.n_train, model=args.model)
            results.append(r)
            print(f"# {name:6s} batch {batch:5d}: epochs {', '.join(f'{t:.3f}' for t in r['epochs'])} s",
                  file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))

    names = [n for n, _ in frameworks]
    what = "the CNN chapter's model (Conv2D 32, MaxPooling2D, Conv2D 64, MaxPooling2D, Dense 100, Dropout, Dense 10)" \
        if args.model == "cnn" else "seeds' MLP 784-300-100-10"
    print(f"\n{what}, Adam, {results[0]['n_train']} {results[0]['data']} images; "
          f"median seconds per epoch of {args.epochs} (CPU seconds of the process in brackets)")
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


if __name__ == "__main__":
    main()
