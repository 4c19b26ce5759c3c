"""MNIST handwritten digits (Yann LeCun, Corinna Cortes, Christopher Burges; CC BY-SA 3.0)."""
from .fetch import IdxFile, load_idx_set, register

NAME = "mnist"
# MD5s of the decompressed IDX bytes: the gzip wrapping differs between mirrors.
FILES = (
    IdxFile("train-images-idx3-ubyte.gz", (60000, 28, 28), payload_md5="6bbc9ace898e44ae57da46a324031adb"),
    IdxFile("train-labels-idx1-ubyte.gz", (60000,), payload_md5="a25bea736e30d166cdddb491f175f624"),
    IdxFile("t10k-images-idx3-ubyte.gz", (10000, 28, 28), payload_md5="2646ac647ad5339dbf082846283269ea"),
    IdxFile("t10k-labels-idx1-ubyte.gz", (10000,), payload_md5="27ae3e4e09519cfbb04c329615203637"),
)
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

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape
        (60000, 28, 28) and (10000, 28, 28) with values 0..255, uint8 labels
        0..9 of shape (60000,) and (10000,), in the original order.

    Raises:
        FileNotFoundError: the files are neither found nor downloadable
            (the message says which files to put where).
        ValueError: a file fails its checksum or is not a well-formed IDX file.
    """
    return load_idx_set(NAME, "MNIST", FILES, MIRRORS, path, keras_cache=KERAS_CACHE)
