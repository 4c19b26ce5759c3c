"""Data where Keras users already hold it: Keras's mnist.npz and cache, a
FASTNN_DATA_DIR that is the data set's own folder, path= as a file; and
no debris from a failed download."""
import os

import numpy as np
import pytest

from fastnn.datasets import fashion_mnist, fetch, mnist

MNIST_NAMES = [f.name for f in mnist.FILES]


@pytest.fixture
def home(monkeypatch, tmp_path):
    """An empty home (empty caches), no FASTNN_DATA_DIR, no mirrors."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(fetch.ENV_VAR, raising=False)
    monkeypatch.setattr(mnist, "MIRRORS", ())
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ())
    return home


@pytest.fixture(scope="module")
def mnist_arrays(shared_data):
    return mnist.load_data(path=shared_data / "mnist")


def write_keras_npz(path, arrays):
    """The layout of Keras's mnist.npz: np.savez of the four arrays."""
    (x_train, y_train), (x_test, y_test) = arrays
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def assert_same(a, b):
    for u, v in zip((*a[0], *a[1]), (*b[0], *b[1])):
        np.testing.assert_array_equal(u, v)


def test_keras_mnist_npz_in_keras_cache_is_read_by_name_and_by_default(home, mnist_arrays):
    write_keras_npz(home / ".keras" / "datasets" / "mnist.npz", mnist_arrays)
    assert_same(mnist.load_data(path="mnist.npz"), mnist_arrays)     # Keras: relative to its cache
    assert_same(mnist.load_data(), mnist_arrays)                     # found offline, nothing downloaded
    assert not (home / ".fastnn").exists()


def test_an_npz_given_by_path_is_verified(home, mnist_arrays, tmp_path):
    write_keras_npz(tmp_path / "mine.npz", mnist_arrays)
    assert_same(mnist.load_data(path=tmp_path / "mine.npz"), mnist_arrays)
    (x_train, y_train), test = mnist_arrays
    y_bad = y_train.copy()
    y_bad[0] = (y_bad[0] + 1) % 10
    write_keras_npz(tmp_path / "bad.npz", ((x_train, y_bad), test))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte in .*bad\.npz does not hold MNIST's data"):
        mnist.load_data(path=tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        mnist.load_data(path="missing.npz")


def test_fastnn_data_dir_may_be_the_data_sets_own_folder(home, shared_data, monkeypatch):
    monkeypatch.setenv(fetch.ENV_VAR, str(shared_data / "mnist"))
    (x_train, _), _ = mnist.load_data()
    assert x_train.shape == (60000, 28, 28)
    # the same names, another data set's files: not taken for Fashion-MNIST's
    with pytest.raises(FileNotFoundError, match="could not be downloaded"):
        fashion_mnist.load_data()


def test_mnist_files_given_as_fashion_mnist_are_named_not_called_corrupt(home, shared_data):
    with pytest.raises(ValueError) as info:
        fashion_mnist.load_data(path=shared_data / "mnist")
    message = str(info.value)
    assert "is not Fashion-MNIST's train-images-idx3-ubyte.gz; it is MNIST's train-images-idx3-ubyte.gz" in message
    assert "delete" not in message.lower()


def test_keras_fashion_mnist_cache_folder_is_found(home, shared_data, monkeypatch):
    folder = home / ".keras" / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    for name in MNIST_NAMES:
        os.symlink(shared_data / "mnist" / name, folder / name)
    # found there (and then verified: these are MNIST's files under the same names)
    with pytest.raises(ValueError, match="it is MNIST's"):
        fashion_mnist.load_data()


def test_a_failed_download_leaves_no_empty_folders(home, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/",))     # nothing listens there
    with pytest.raises(FileNotFoundError, match="could not be downloaded"):
        mnist.load_data()
    assert list(home.iterdir()) == []
