"""Shared test setup: import fastnn from this checkout, and find the real data in ../shared/data."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

try:
    import fastnn  # noqa: F401  (an installed fastnn, e.g. pip install -e .)
except ImportError:
    sys.path.insert(0, str(ROOT))


def find_shared_data():
    """The shared real-data folder (``../shared/data`` beside the repository), or None."""
    for candidate in (ROOT / ".." / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate.resolve()
    return None


@pytest.fixture(scope="session")
def shared_data():
    """Path of ``shared/data`` (MNIST IDX files, UCI sets, Keras files); skips when absent."""
    path = find_shared_data()
    if path is None:
        pytest.skip("real data not found: expected ../shared/data beside the repository (or /work/shared/data)")
    return path
