"""fastnn on CUDA vs PyTorch on CUDA: the seeds' MLP, steady-state seconds per epoch.

    python benchmarks/bench_cuda.py                      # batch 32, 128, 1024; 3 timed epochs each
    python benchmarks/bench_cuda.py --batches 128 --epochs 2 --samples 10000

The model is 784-300-100-10 (relu, relu, softmax), Adam (lr 1e-3, eps 1e-7),
sparse categorical cross-entropy, on MNIST's 60,000 training images when the
IDX files are found (``--mnist-dir``, ``$FASTNN_MNIST_DIR``, ``../shared/data/mnist``),
else on random data of that shape (the speed does not depend on the values).
Both frameworks keep the data on the GPU and shuffle every epoch; an untimed
warm-up epoch pays compilation first. PyTorch runs when ``torch`` imports
with CUDA. Prints one table, with the GPU's name; run both in one process so
the ratios are side by side.

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) this only checks that
the script runs: use ``--samples 64 --batches 32 --epochs 1``.
"""
import argparse
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(mnist_dir, n):
    """(x float32 (n, 784) in [0, 1], y int64 (n,), source name)."""
    for d in (mnist_dir, os.environ.get("FASTNN_MNIST_DIR"), ROOT / "../shared/data/mnist", "/work/shared/data/mnist"):
        if d and (Path(d) / "train-images-idx3-ubyte.gz").exists():
            x = _idx(Path(d) / "train-images-idx3-ubyte.gz").reshape(-1, 784)[:n]
            y = _idx(Path(d) / "train-labels-idx1-ubyte.gz")[:n]
            return (x / np.float32(255)).astype(np.float32), y.astype(np.int64), "MNIST"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    return (x / np.float32(255)).astype(np.float32), rng.integers(0, 10, n).astype(np.int64), "random, MNIST-shaped"


def time_fastnn(x, y, batch, epochs):
    """Seconds of each timed epoch of fastnn on CUDA (after one warm-up epoch)."""
    import fastnn as keras
    keras.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input(shape=(784,)), keras.layers.Dense(300, activation="relu"),
                              keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    stamps = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            stamps.append([time.perf_counter()])

        def on_epoch_end(self, epoch, logs=None):
            stamps[-1].append(time.perf_counter())   # fit has synchronised to fetch the epoch's loss

    with keras.device("cuda"):
        model.fit(x, y, batch_size=batch, epochs=epochs + 1, verbose=0, callbacks=[Clock()])
    return [end - start for start, end in stamps[1:]]


def time_torch(x, y, batch, epochs):
    """Seconds of each timed epoch of PyTorch on CUDA (after one warm-up epoch)."""
    import torch
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100),
                                torch.nn.ReLU(), torch.nn.Linear(100, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()          # softmax + cross-entropy on logits, as fastnn fuses them
    X, Y = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    n = X.shape[0]
    times = []
    for epoch in range(epochs + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        order = torch.randperm(n, device=dev)
        total = torch.zeros((), device=dev)
        for i in range(0, n, batch):
            ids = order[i:i + batch]
            loss = loss_fn(model(X[ids]), Y[ids])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * ids.shape[0]   # a running loss, as fastnn reports, without a sync
        float(total)                                # one sync per epoch
        if epoch:
            times.append(time.perf_counter() - t0)
    return times


def torch_cuda():
    """(True, GPU name) when PyTorch imports with CUDA, else (False, why not)."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} has no CUDA device"
    return True, f"torch {torch.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 1024])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after one warm-up)")
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--mnist-dir", default=None)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()

    from fastnn import config
    try:
        config.set_device("cuda")
    except RuntimeError as exc:
        sys.exit(str(exc))
    from numba import cuda
    from numba.core import config as numba_config
    if numba_config.ENABLE_CUDASIM:
        gpu = "Numba's CUDA simulator (timings mean nothing)"
    else:
        gpu = cuda.get_current_device().name
        gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
    x, y, source = load(args.mnist_dir, args.samples)
    with_torch, torch_note = (False, "skipped (--no-torch)") if args.no_torch else torch_cuda()

    print(f"GPU: {gpu}; data: {source}, {x.shape[0]} samples; MLP 784-300-100-10, Adam; "
          f"median of {args.epochs} epochs after a warm-up; PyTorch: {torch_note}")
    print(f"| batch | fastnn CUDA s/epoch | PyTorch CUDA s/epoch | fastnn / PyTorch |")
    print(f"| --- | --- | --- | --- |")
    for batch in args.batches:
        ours = statistics.median(time_fastnn(x, y, batch, args.epochs))
        theirs = statistics.median(time_torch(x, y, batch, args.epochs)) if with_torch else None
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        print(f"| {batch} | {ours:.3f} | {f'{theirs:.3f}' if theirs else '-'} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
