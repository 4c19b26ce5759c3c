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


# -- CUDA device tests --------------------------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line("markers", "cuda_device: needs numba.cuda (a GPU, or Numba's CUDA simulator)")


def _on_cuda_device():
    from numba.core import config as numba_config
    from fastnn import config as fastnn_config
    return bool(numba_config.ENABLE_CUDASIM) or fastnn_config.cuda_available()


def pytest_collection_modifyitems(config, items):
    """Without numba.cuda, the device tests are deselected rather than skipped:
    they do run, in test_cuda.py's subprocess under the CUDA simulator, so a
    skip would report as missing what is tested."""
    device = [item for item in items if item.get_closest_marker("cuda_device")]
    if device and not _on_cuda_device():
        config.hook.pytest_deselected(items=device)
        items[:] = [item for item in items if not item.get_closest_marker("cuda_device")]
        config._fastnn_cuda_deselected = len(device)


def pytest_terminal_summary(terminalreporter, config):
    n = getattr(config, "_fastnn_cuda_deselected", 0)
    if n:
        terminalreporter.write_line(f"{n} CUDA device tests deselected here (no GPU): "
                                    "test_device_suite_on_cuda_simulator runs them under Numba's CUDA simulator")


# -- names ---------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_names():
    """Each test starts a session, as Keras's tests do: automatic names ("dense",
    "sequential", ...) are numbered across a session, so they start again here."""
    import fastnn
    fastnn.backend.clear_session()
