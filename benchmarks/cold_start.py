"""The first run on a machine: import to first training step with an empty Numba cache.

    python benchmarks/cold_start.py                       # 3 runs of this tree
    python benchmarks/cold_start.py --baseline /work/main # alternating with another checkout
    python benchmarks/cold_start.py --model cnn           # the CNN chapter's model (run_one.py --model cnn)

Each run is a fresh ``run_one.py fastnn --epochs 0 --model MODEL`` (the seeds'
MLP by default, or the CNN; Adam, sparse categorical cross-entropy, accuracy;
one training step of batch 32, then predict on 10,000 images) with an empty,
temporary NUMBA_CACHE_DIR. Prints one line
per run: wall seconds of the import, of import to the end of the first step
and of the first predict; the main process's CPU seconds at the same points;
and the CPU seconds of the whole process tree (compile workers included).
With ``--baseline``, runs of the two trees alternate, so both see the same
machine load. Nothing is asserted.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(tree, env_extra, model="mlp"):
    """One cold run of ``tree`` (a checkout's root): run_one's JSON plus "tree_cpu_s"."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(tree), **env_extra)
        before = _children_cpu()
        out = subprocess.run([sys.executable, str(HERE / "run_one.py"), "fastnn", "--epochs", "0", "--model", model],
                             capture_output=True, text=True, env=env, cwd=tree)
        tree_cpu = _children_cpu() - before
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["tree_cpu_s"] = tree_cpu
    return result


def line(name, r):
    cpu = r.get("cpu", {})
    return (f"{name:10} wall: import {r['import_s']:.2f}  to first step {r['first_step_s']:.2f}  "
            f"first predict {r['first_predict_s']:.2f} | main CPU: import {cpu.get('import_s', 0):.2f}  "
            f"to first step {cpu.get('first_step_s', 0):.2f}  first predict {cpu.get('first_predict_s', 0):.2f} | "
            f"tree CPU {r['tree_cpu_s']:.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="run_one.py's model")
    p.add_argument("--baseline", help="another checkout's root, run alternately with this one")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the runs (repeatable)")
    args = p.parse_args()
    env_extra = dict(kv.split("=", 1) for kv in args.env)
    trees = [("this", HERE.parent)] + ([("baseline", Path(args.baseline).resolve())] if args.baseline else [])
    for _ in range(args.runs):
        for name, tree in trees:
            print(line(name, run(tree, env_extra, args.model)), flush=True)


if __name__ == "__main__":
    main()
