"""Optical recognition of handwritten digits (UCI; E. Alpaydin, C. Kaynak), shipped with fastnn."""
import numpy as np

from . import bundled


def load_data(test_split=bundled.TEST_SPLIT, seed=bundled.SEED):
    """Loads the 1,797 8x8 digit images shipped in the package (no download).

    Split: the rows are shuffled with ``np.random.RandomState(seed).permutation``;
    the first ``int(1797 * (1 - test_split))`` are the training set. With the
    defaults ``test_split=0.2``, ``seed=113``: 1,437 training and 360 test images.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape (n, 8, 8)
        with values 0..16 (counts of on pixels in 4x4 blocks), uint8 labels 0..9
        of shape (n,). Description and licence: ``fastnn/datasets/data/digits.rst``.
    """
    table = bundled.read_table("digits.csv.gz")
    if table.shape != (1797, 65):
        raise ValueError(f"digits.csv.gz: expected 1797 rows of 65 values, got {table.shape}")
    x = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    y = table[:, 64].astype(np.uint8)
    return bundled.split(x, y, test_split, seed)
