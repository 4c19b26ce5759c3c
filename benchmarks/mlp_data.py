"""The benchmark workload: the seeds' MLP on MNIST (or synthetic data of its shape).

Imports nothing heavy, so each framework's runner pays only its own import.
"""
import gzip
import os
from pathlib import Path

import numpy as np

LAYERS = (784, 300, 100, 10)
_HERE = Path(__file__).resolve().parent


def mnist_dir():
    for d in (os.environ.get("FASTNN_MNIST_DIR"), _HERE.parent / "../shared/data/mnist", "/work/shared/data/mnist"):
        if d and (Path(d) / "train-images-idx3-ubyte.gz").exists():
            return Path(d)
    return None


def _idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(n_train=60000):
    """(x_train float32 (n, 784) in [0, 1], y_train int64, x_test, y_test, source name)."""
    d = mnist_dir()
    if d is not None:
        xtr = _idx(d / "train-images-idx3-ubyte.gz")[:n_train].reshape(-1, 784)
        ytr = _idx(d / "train-labels-idx1-ubyte.gz")[:n_train]
        xte = _idx(d / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
        yte = _idx(d / "t10k-labels-idx1-ubyte.gz")
        src = "MNIST"
    else:
        rng = np.random.default_rng(0)
        xtr = rng.integers(0, 256, (n_train, 784), dtype=np.uint8)
        ytr = rng.integers(0, 10, n_train)
        xte = rng.integers(0, 256, (10000, 784), dtype=np.uint8)
        yte = rng.integers(0, 10, 10000)
        src = "synthetic (MNIST not found)"
    # uint8 -> float32 in one step: no float64 temporary inflating every framework's peak RSS
    scale = np.float32(1 / 255)
    return (np.multiply(xtr, scale, dtype=np.float32), ytr.astype(np.int64),
            np.multiply(xte, scale, dtype=np.float32), yte.astype(np.int64), src)


def peak_rss_mb():
    """Peak resident set size of this process (VmHWM), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
