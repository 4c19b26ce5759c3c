"""The CNN chapter's training step on one thread: fastnn against PyTorch, CPU milliseconds a step.

    python benchmarks/one_thread.py                     # batch 32 and 128, two alternating rounds
    python benchmarks/one_thread.py --batches 32 --rounds 3

Each (framework, batch, round) runs in its own process with one thread
(``NUMBA_NUM_THREADS=1``, ``torch.set_num_threads(1)``, BLAS and OpenMP at
one): after a warm-up epoch, five epochs of 10 steps on random images, and
the process CPU time of the fastest epoch divided by its steps. One
thread's CPU time is the work a step costs, so it compares the two
implementations where wall-clock epochs on a shared VM drift by half from
one run to the next. PyTorch is skipped when it is not installed. Nothing
is asserted.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = 10


def _fastnn_epoch(b):
    sys.path.insert(0, str(HERE.parent))
    import numpy as np
    from cnn_profile import chapter_cnn
    model = chapter_cnn()
    x = np.random.default_rng(0).random((b * STEPS, 28, 28, 1), dtype=np.float32)
    y = np.arange(b * STEPS) % 10
    return lambda: model.fit(x, y, batch_size=b, verbose=0, epochs=1)


def _torch_epoch(b):
    import torch
    from run_one import torch_model
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch_model(torch, "cnn")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = torch.nn.CrossEntropyLoss()
    x, y = torch.rand(b * STEPS, 1, 28, 28), torch.randint(0, 10, (b * STEPS,))

    def epoch():
        for i in range(STEPS):
            opt.zero_grad()
            loss(model(x[i * b:(i + 1) * b]), y[i * b:(i + 1) * b]).backward()
            opt.step()
    return epoch


def measure(framework, b):
    """CPU ms of one step (fastest of five epochs) in this process."""
    epoch = (_fastnn_epoch if framework == "fastnn" else _torch_epoch)(b)
    epoch()
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        epoch()
        best = min(best, time.process_time() - start)
    return best / STEPS * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    has_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    frameworks = ["fastnn", "torch"] if has_torch else ["fastnn"]
    print("| batch | " + " | ".join(f"{f} CPU ms a step" for f in frameworks) + (" | fastnn / torch |" if has_torch else " |"))
    print("| --- " * (len(frameworks) + 1 + has_torch) + "|")
    for b in args.batches:
        runs = {f: [] for f in frameworks}
        for _ in range(args.rounds):
            for f in frameworks:
                out = subprocess.run([sys.executable, __file__, "--child", f, str(b)], capture_output=True, text=True,
                                     env=env, cwd=HERE)
                if out.returncode != 0:
                    raise RuntimeError(out.stderr[-2000:])
                runs[f].append(json.loads(out.stdout.strip().splitlines()[-1]))
        cells = [" / ".join(f"{v:.1f}" for v in runs[f]) for f in frameworks]
        if has_torch:
            cells.append(" / ".join(f"{a / t:.2f}" for a, t in zip(runs["fastnn"], runs["torch"])))
        print(f"| {b} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
