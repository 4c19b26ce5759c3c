"""Reuters newswire topics (46 classes), as Keras ships it: articles as word-rank sequences."""
import numpy as np

from . import text

FILE, SHA256 = "reuters.npz", "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
INDEX_FILE, INDEX_MD5 = "reuters_word_index.json", "4d44cc38712099c9e383dc6e5f11a921"


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113, start_char=1,
              oov_char=2, index_from=3):
    """Keras's ``reuters.load_data``: 11,228 newswires with topic labels 0..45,
    shuffled with ``np.random.RandomState(seed)``, then split: the first
    ``1 - test_split`` for training. Other arguments as ``imdb.load_data``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: object arrays of lists of
        ints, and int64 label arrays.
    """
    if not isinstance(test_split, (int, float)) or isinstance(test_split, bool) or not 0 <= test_split <= 1:
        raise ValueError(f"test_split must be a number in [0, 1], got {test_split!r}")
    data = text.read_npz(text.locate("reuters", path, FILE, sha256=SHA256))
    if "x" not in data or "y" not in data:
        raise ValueError(f"{FILE} lacks the arrays 'x' and 'y'; is it Keras's Reuters file?")
    xs, labels = data["x"], data["y"]
    rng = np.random.RandomState(seed)
    order = np.arange(len(xs))
    rng.shuffle(order)
    xs, labels = text.prepare(list(xs[order]), labels[order], num_words, skip_top, maxlen, start_char,
                              oov_char, index_from)
    if maxlen and not xs:
        raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. "
                         "Increase maxlen.")
    xs = text.cut_vocabulary(xs, num_words, skip_top, oov_char)
    n = int(len(xs) * (1 - test_split))
    return (text.object_array(xs[:n]), np.array(labels[:n])), (text.object_array(xs[n:]), np.array(labels[n:]))


def get_word_index(path="reuters_word_index.json"):
    """Keras's Reuters word index: {word: rank}."""
    return text.read_word_index(text.locate("reuters", path, INDEX_FILE, md5=INDEX_MD5))
