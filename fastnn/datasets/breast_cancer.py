"""Breast cancer Wisconsin (diagnostic) data set (UCI; W. Wolberg, W. Street, O. Mangasarian), shipped with fastnn."""
import numpy as np

from . import bundled

CLASS_NAMES = ("malignant", "benign")


def load_data(test_split=bundled.TEST_SPLIT, seed=bundled.SEED):
    """Loads the 569 tumour samples shipped in the package (no download).

    Split: the rows are shuffled with ``np.random.RandomState(seed).permutation``;
    the first ``int(569 * (1 - test_split))`` are the training set. With the
    defaults ``test_split=0.2``, ``seed=113``: 455 training and 114 test samples.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: float64 features of shape
        (n, 30) (unscaled; mean, standard error and worst of ten measurements),
        int64 labels of shape (n,): 0 malignant, 1 benign (``CLASS_NAMES``).
        Description and licence: ``fastnn/datasets/data/breast_cancer.rst``.
    """
    text = bundled.read_text("breast_cancer.csv")
    n, n_features = (int(v) for v in text.split("\n", 1)[0].split(",")[:2])
    table = bundled.read_table("breast_cancer.csv", skip_header=1)
    if table.shape != (n, n_features + 1) or (n, n_features) != (569, 30):
        raise ValueError(f"breast_cancer.csv: expected 569 rows of 31 values, got {table.shape}")
    x = table[:, :n_features]
    y = table[:, n_features].astype(np.int64)
    return bundled.split(x, y, test_split, seed)
