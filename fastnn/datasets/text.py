"""Keras's token-sequence data sets (IMDB, Reuters): finding, downloading and safely reading their files.

Where a file named ``NAME`` (``imdb.npz``, ``imdb_word_index.json``, ...) is read from:

1. ``path=`` given to ``load_data`` / ``get_word_index`` when it names a folder
   or a file path (not a bare file name): that file only, nothing is downloaded;
2. ``$FASTNN_DATA_DIR/NAME``;
3. Keras's own cache, ``~/.keras/datasets/NAME``, so files Keras downloaded are reused;
4. fastnn's cache ``~/.fastnn/datasets/NAME``;
5. a download from Keras's origin into fastnn's cache, checked against the
   checksum Keras publishes (a temporary file, verified, then renamed).

The ``.npz`` files hold ragged sequences as pickled NumPy object arrays; they
are read with an unpickler that only rebuilds NumPy arrays (as Keras 3 does),
so a crafted file cannot run code.
"""
import hashlib
import io
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

from .fetch import ENV_VAR, TIMEOUT_S

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_ALLOWED = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                      ("numpy._core.multiarray", "_reconstruct")})


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Refusing to load {module}.{name} from a data set file: only NumPy arrays "
                                     "are allowed (the file may be corrupt or malicious)")


def read_npz(path):
    """{member: array} of a ``.npz`` file; object arrays through ``_ArraysOnly``."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                buffer = io.BytesIO(archive.read(member))
                try:
                    arrays[member[:-4]] = np.lib.format.read_array(buffer, allow_pickle=False)
                except ValueError:
                    buffer.seek(0)
                    major, _ = np.lib.format.read_magic(buffer)
                    (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(buffer)
                    arrays[member[:-4]] = _ArraysOnly(buffer).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError) as e:
        raise ValueError(f"{path} is not a readable .npz data set file: {e}") from None
    return arrays


def locate(name, path, default, sha256=None, md5=None):
    """The local file for ``path`` (``default``: the data set's file name), downloading it if needed."""
    if path is not None and Path(os.fspath(path)).name != os.fspath(path):
        file = Path(os.fspath(path)).expanduser()
        if file.is_dir():
            file = file / default
        if not file.is_file():
            raise FileNotFoundError(f"{file} does not exist; path= must name Keras's {default} file or the folder "
                                    "holding it")
        return file
    fname = os.fspath(path) if path is not None else default
    env = os.environ.get(ENV_VAR)
    home = Path(os.path.expanduser("~"))
    fastnn_cache = home / ".fastnn" / "datasets" / fname
    for candidate in ([Path(env).expanduser() / fname] if env else []) + [home / ".keras" / "datasets" / fname,
                                                                         fastnn_cache]:
        if candidate.is_file():
            return candidate
    if fname != default:
        raise FileNotFoundError(f"{fname} was found in none of ${ENV_VAR}, ~/.keras/datasets, ~/.fastnn/datasets")
    _download(ORIGIN + fname, fastnn_cache, sha256, md5)
    return fastnn_cache


def _download(url, dst, sha256, md5):
    import tempfile
    import urllib.request
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    try:
        print(f"Downloading data from {url}", file=sys.stderr)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            while chunk := response.read(1 << 16):
                out.write(chunk)
        data = Path(tmp).read_bytes()
        digest, want = (hashlib.sha256(data).hexdigest(), sha256) if sha256 else (hashlib.md5(data).hexdigest(), md5)
        if digest != want:
            raise ValueError(f"the download from {url} fails its checksum ({digest}, expected {want})")
        os.replace(tmp, dst)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise FileNotFoundError(f"{dst.name} was not found locally and could not be downloaded from {url} ({e}). "
                                f"Put Keras's {dst.name} in ~/.keras/datasets/ or ${ENV_VAR}/, or pass "
                                "path=") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_word_index(file):
    with open(file, encoding="utf-8") as f:
        index = json.load(f)
    if not isinstance(index, dict):
        raise ValueError(f"{file} is not a word index (a JSON object of word: rank)")
    return index


def _check_int(value, what, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer{' or None' if allow_none else ''}, got {value!r}")


def prepare(xs, labels, num_words, skip_top, maxlen, start_char, oov_char, index_from):
    """Keras's shared steps after shuffling: offsets, start/oov chars, maxlen filter, vocabulary cut.
    Returns (lists of ints, labels)."""
    for value, what in ((num_words, "num_words"), (maxlen, "maxlen"), (start_char, "start_char"),
                        (oov_char, "oov_char")):
        _check_int(value, what)
    _check_int(skip_top, "skip_top", False)
    _check_int(index_from, "index_from", False)
    if start_char is not None:
        xs = [[start_char] + [int(w) + index_from for w in x] for x in xs]
    else:
        xs = [[int(w) + index_from for w in x] for x in xs]
    if maxlen:
        kept = [i for i, x in enumerate(xs) if len(x) < maxlen]
        xs, labels = [xs[i] for i in kept], labels[kept]
    return xs, labels


def cut_vocabulary(xs, num_words, skip_top, oov_char):
    if not num_words:
        num_words = max(max(x) for x in xs if x)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def object_array(lists):
    out = np.empty(len(lists), dtype=object)
    out[:] = lists
    return out
