"""Reading the small data sets shipped in ``fastnn/datasets/data/`` and splitting them.

The files are scikit-learn's copies of three UCI data sets (CC BY 4.0); each
has its description beside it (``digits.rst``, ``breast_cancer.rst``,
``diabetes.rst``).
"""
import gzip
import io
from importlib import resources

import numpy as np

TEST_SPLIT = 0.2
SEED = 113      # Keras's boston_housing default, for the same reason: a fixed, documented split


def read_text(filename):
    """Text of a shipped data file, gunzipped when the name ends in ``.gz``."""
    raw = (resources.files(__package__) / "data" / filename).read_bytes()
    if filename.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("ascii")


def read_table(filename, delimiter=",", skip_header=0):
    """float64 array of a shipped delimited-text file (one row per line)."""
    return np.loadtxt(io.StringIO(read_text(filename)), delimiter=delimiter, skiprows=skip_header,
                      dtype=np.float64, ndmin=2)


def split(x, y, test_split, seed):
    """``(x_train, y_train), (x_test, y_test)``: rows shuffled by
    ``np.random.RandomState(seed).permutation`` (a stream NumPy keeps stable across
    versions), the first ``int(n * (1 - test_split))`` for training, the rest for test."""
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float)) or not 0 < test_split < 1:
        raise ValueError(f"test_split must be a number strictly between 0 and 1, got {test_split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    order = np.random.RandomState(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_train = int(len(x) * (1 - test_split))
    if n_train == 0 or n_train == len(x):
        raise ValueError(f"test_split={test_split} leaves an empty train or test set of {len(x)} samples")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
