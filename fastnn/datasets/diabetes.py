"""Diabetes progression data set (Efron, Hastie, Johnstone, Tibshirani 2004), shipped with fastnn."""
from . import bundled

FEATURE_NAMES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def load_data(test_split=bundled.TEST_SPLIT, seed=bundled.SEED):
    """Loads the 442 patients shipped in the package (no download): a regression task.

    Split: the rows are shuffled with ``np.random.RandomState(seed).permutation``;
    the first ``int(442 * (1 - test_split))`` are the training set. With the
    defaults ``test_split=0.2``, ``seed=113``: 353 training and 89 test samples.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: float64 features of shape
        (n, 10) in their original units, unscaled (``FEATURE_NAMES``: age, sex,
        body mass index, blood pressure, six blood serum measurements; adapt a
        ``Normalization`` layer to them), float64 targets of shape (n,): disease
        progression one year later (25..346). Description and licence:
        ``fastnn/datasets/data/diabetes.rst``.
    """
    x = bundled.read_table("diabetes_data_raw.csv.gz", delimiter=" ")
    y = bundled.read_table("diabetes_target.csv.gz")
    if x.shape != (442, 10) or y.shape != (442, 1):
        raise ValueError(f"diabetes files: expected 442 rows of 10 features and 1 target, got {x.shape}, {y.shape}")
    return bundled.split(x, y[:, 0], test_split, seed)
