"""IMDB movie-review sentiment (Maas et al., 2011), as Keras ships it: reviews as word-rank sequences."""
import numpy as np

from . import text

FILE, SHA256 = "imdb.npz", "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
INDEX_FILE, INDEX_MD5 = "imdb_word_index.json", "bfafd718b763782e994055a2d397834f"


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2,
              index_from=3):
    """Keras's ``imdb.load_data``: 25,000 training and 25,000 test reviews with labels 0/1.

    Each review is a list of word ranks (1 = the most frequent word) shifted
    by ``index_from`` (default 3: 0 is padding, 1 ``start_char``, 2 ``oov_char``).
    Both halves are shuffled with ``np.random.RandomState(seed)`` (train then
    test, as Keras); ``start_char`` (default 1) starts every review;
    ``maxlen`` keeps only reviews shorter than it; words outside
    ``[skip_top, num_words)`` become ``oov_char`` (or are dropped when it is None).

    The file is Keras's ``imdb.npz``, found as ``fastnn.datasets.text`` says
    (``path=``, ``$FASTNN_DATA_DIR``, ``~/.keras/datasets``, fastnn's cache,
    else downloaded and checked against Keras's SHA-256).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: object arrays of lists of
        ints, and int64 label arrays.
    """
    data = text.read_npz(text.locate("imdb", path, FILE, sha256=SHA256))
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in data:
            raise ValueError(f"{FILE} lacks the array {key!r}; is it Keras's IMDB file?")
    rng = np.random.RandomState(seed)
    parts = []
    for x, y in ((data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])):
        order = np.arange(len(x))
        rng.shuffle(order)
        parts.append(text.prepare(list(x[order]), y[order], num_words, skip_top, maxlen, start_char, oov_char,
                                  index_from))
    (x_train, y_train), (x_test, y_test) = parts
    if maxlen and (not x_train or not x_test):
        raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. "
                         "Increase maxlen.")
    xs = text.cut_vocabulary(x_train + x_test, num_words, skip_top, oov_char)
    n = len(x_train)
    return (text.object_array(xs[:n]), y_train), (text.object_array(xs[n:]), y_test)


def get_word_index(path="imdb_word_index.json"):
    """Keras's IMDB word index: {word: rank} (ranks before ``index_from`` is added)."""
    return text.read_word_index(text.locate("imdb", path, INDEX_FILE, md5=INDEX_MD5))
