"""Fashion-MNIST: Zalando's article images (Han Xiao, Kashif Rasul, Roland Vollgraf; MIT licence)."""
from .fetch import MNIST_LAYOUT_RETURNS, load_idx_set, mnist_layout_files, register

NAME = "fashion_mnist"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Zalando publishes MD5s of the .gz files only (github.com/zalandoresearch/fashion-mnist,
# "Get the Data"); no checksum of the decompressed bytes is published, so the
# original .gz files are what is verified.
FILES = mnist_layout_files("gz_md5", (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",  # train images, labels
    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310",  # test images, labels
))
MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)

# Where Keras keeps this set, under ~/.keras/datasets/.
KERAS_CACHE = "fashion-mnist"
register("Fashion-MNIST", FILES)


def load_data(path=None):
    """Loads Fashion-MNIST: 60,000 training and 10,000 test images of 10 kinds of clothing.

    Labels index ``CLASS_NAMES``: 0 T-shirt/top, 1 Trouser, 2 Pullover,
    3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

    Args:
        path: a folder holding the four original files (``train-images-idx3-ubyte.gz``,
            ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
            ``t10k-labels-idx1-ubyte.gz``). Default ``None`` searches
            ``$FASTNN_DATA_DIR/fashion_mnist/`` (or ``$FASTNN_DATA_DIR`` itself when
            it holds Fashion-MNIST's files), ``~/.fastnn/datasets/fashion_mnist/``,
            Keras's cache ``~/.keras/datasets/fashion-mnist/``, then downloads into
            ``~/.fastnn/datasets/fashion_mnist/``.
            The files must be Zalando's original ``.gz`` files: they are checked
            against Zalando's published MD5s, the only published checksums.

    """
    return load_idx_set(NAME, "Fashion-MNIST", FILES, MIRRORS, path, keras_cache=KERAS_CACHE)


load_data.__doc__ += MNIST_LAYOUT_RETURNS
