"""MNIST handwritten digits (Yann LeCun, Corinna Cortes, Christopher Burges; CC BY-SA 3.0)."""
from .fetch import MNIST_LAYOUT_RETURNS, load_idx_set, mnist_layout_files, register

NAME = "mnist"
# MD5s of the decompressed IDX bytes: the gzip wrapping differs between mirrors.
FILES = mnist_layout_files("payload_md5", (
    "6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",  # train images, labels
    "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637",  # test images, labels
))
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# Where Keras keeps this set, under ~/.keras/datasets/.
KERAS_CACHE = "mnist.npz"
register("MNIST", FILES)


def load_data(path=None):
    """Loads MNIST: 60,000 training and 10,000 test images of handwritten digits.

    Args:
        path: a folder holding the four original files (``train-images-idx3-ubyte.gz``,
            ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
            ``t10k-labels-idx1-ubyte.gz``), or Keras's ``mnist.npz`` (as given, or
            relative to ``~/.keras/datasets/`` as in Keras). Default ``None`` searches
            ``$FASTNN_DATA_DIR/mnist/`` (or ``$FASTNN_DATA_DIR`` itself when it holds
            MNIST's files), ``~/.fastnn/datasets/mnist/``, Keras's
            ``~/.keras/datasets/mnist.npz``, then downloads into ``~/.fastnn/datasets/mnist/``.
    """
    return load_idx_set(NAME, "MNIST", FILES, MIRRORS, path, keras_cache=KERAS_CACHE)


load_data.__doc__ += MNIST_LAYOUT_RETURNS
