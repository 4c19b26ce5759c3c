"""Finding, downloading and verifying the gzip-compressed IDX files of a data set.

Search order for a data set called ``NAME`` (``"mnist"``, ``"fashion_mnist"``):

1. ``path=`` given to ``load_data``: that folder only, or (as in Keras) a
   ``.npz`` file such as Keras's ``mnist.npz``, as given or in Keras's cache
   ``~/.keras/datasets/`` (nothing is downloaded);
2. ``$FASTNN_DATA_DIR/NAME/``, or ``$FASTNN_DATA_DIR`` itself when it is the
   data set's own folder;
3. the cache ``~/.fastnn/datasets/NAME/``;
4. Keras's cache, so a user who ever ran Keras trains offline
   (``~/.keras/datasets/mnist.npz``, ``~/.keras/datasets/fashion-mnist/``);
5. a download from the data set's public mirrors into the cache (a failed
   one leaves no folder it created behind).

The first place holding all four files wins. Every file is verified each time
it is read, so a corrupt cache or a wrong file is never silently used.
Downloads go to a temporary file in the cache folder that is verified, then
renamed into place: an interrupted or corrupt download never leaves a file
under the real name.
"""
import gzip
import hashlib
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .idx import parse_idx

ENV_VAR = "FASTNN_DATA_DIR"
# Checksums of every known file, so a file of one data set found where another
# is expected (MNIST and Fashion-MNIST share file names) is named, not called corrupt.
_KNOWN = {}
TIMEOUT_S = 30.0          # per network operation, so a dead mirror cannot hang load_data
_CHUNK = 1 << 16


@dataclass(frozen=True)
class IdxFile:
    """One file of a data set.

    ``payload_md5`` is the MD5 of the decompressed IDX bytes (independent of the
    gzip wrapping); ``gz_md5`` the MD5 of the ``.gz`` file itself, used only where
    no payload checksum is published. At least one of them is set.
    """
    name: str
    shape: tuple
    payload_md5: str = None
    gz_md5: str = None


# The four files of every set laid out like MNIST, in the order ``load_idx_set`` reads them.
_MNIST_LAYOUT = (
    ("train-images-idx3-ubyte.gz", (60000, 28, 28)),
    ("train-labels-idx1-ubyte.gz", (60000,)),
    ("t10k-images-idx3-ubyte.gz", (10000, 28, 28)),
    ("t10k-labels-idx1-ubyte.gz", (10000,)),
)


def mnist_layout_files(checksum, md5s):
    """The four ``IdxFile`` of a set laid out like MNIST (MNIST, Fashion-MNIST).

    ``checksum`` names what the MD5s cover, ``"payload_md5"`` or ``"gz_md5"``;
    ``md5s`` holds four hex strings: train images, train labels, test images,
    test labels.
    """
    return tuple(IdxFile(name, shape, **{checksum: md5})
                 for (name, shape), md5 in zip(_MNIST_LAYOUT, md5s, strict=True))


# The end of every MNIST-layout ``load_data`` docstring, kept in one place so the
# sets cannot come to promise different arrays or errors.
MNIST_LAYOUT_RETURNS = """
    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape
        (60000, 28, 28) and (10000, 28, 28) with values 0..255, uint8 labels
        0..9 of shape (60000,) and (10000,), in the original order.

    Raises:
        FileNotFoundError: the files are neither found nor downloadable
            (the message says which files to put where).
        ValueError: a file fails its checksum or is not a well-formed IDX file.
    """


def cache_dir(name):
    """``~/.fastnn/datasets/NAME`` (not created here)."""
    return Path(os.path.expanduser("~")) / ".fastnn" / "datasets" / name


def keras_cache_dir():
    """Keras's download cache, ``~/.keras/datasets``."""
    return Path(os.path.expanduser("~")) / ".keras" / "datasets"


def register(title, files):
    """Records the checksums of a data set's files (``_KNOWN``)."""
    for spec in files:
        for md5 in (spec.payload_md5, spec.gz_md5):
            if md5 is not None:
                _KNOWN[md5] = f"{title}'s {spec.name}"


def load_idx_set(name, title, files, mirrors, path=None, keras_cache=None):
    """``(x_train, y_train), (x_test, y_test)`` from four verified IDX files
    (or a Keras ``.npz`` holding the same arrays).

    ``files`` lists train images, train labels, test images, test labels;
    ``keras_cache``: where Keras keeps this set, relative to
    ``keras_cache_dir()`` (a ``.npz`` file or a folder of the four files).
    Raises ``FileNotFoundError`` when the files are neither found nor
    downloadable, ``ValueError`` when a file fails its checksum or is malformed.
    """
    found = _locate(name, title, files, mirrors, path, keras_cache)
    if found.suffix == ".npz":
        return read_npz(found, files, title)
    x_train, y_train, x_test, y_test = (read_verified(found / f.name, f, title) for f in files)
    return (x_train, y_train), (x_test, y_test)


def read_npz(file_path, files, title):
    """The four arrays of a Keras ``.npz`` (``x_train``, ``y_train``, ``x_test``,
    ``y_test``), each verified as the IDX file it stands for: its checksum is
    of the decompressed IDX bytes, which the array and its shape determine."""
    try:
        with np.load(file_path, allow_pickle=False) as npz:
            arrays = [np.asarray(npz[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, ValueError, KeyError, EOFError, zlib.error) as e:
        raise ValueError(f"{title}: {file_path} is not a Keras .npz of x_train, y_train, x_test, y_test ({e})") \
            from None
    for array, spec in zip(arrays, files):
        where = f"{spec.name[:-3]} in {file_path}"
        if array.dtype != np.uint8 or array.shape != tuple(spec.shape):
            raise ValueError(f"{title}: {where} is a {array.dtype} array of shape {array.shape}, expected uint8 "
                             f"of shape {tuple(spec.shape)}")
        if spec.payload_md5 is None:
            raise ValueError(f"{title}: only the original .gz files can be verified (no checksum of the arrays is "
                             f"published); use them instead of {file_path}")
        header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        got = hashlib.md5(header + np.ascontiguousarray(array).tobytes()).hexdigest()
        if got != spec.payload_md5:
            raise ValueError(f"{title}: {where} does not hold {title}'s data (MD5 {got} of its IDX bytes, "
                             f"expected {spec.payload_md5}){_known(got)}")
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])


def _known(md5):
    """``"; it is X's file"`` when ``md5`` belongs to a known data set's file, else ""."""
    return f"; it is {_KNOWN[md5]}" if md5 in _KNOWN else ""


def read_verified(file_path, spec, title):
    """The uint8 array of shape ``spec.shape`` stored in ``file_path``, after
    checking its checksum(s), its IDX structure and its shape."""
    return _verified_array(Path(file_path).read_bytes(), spec, title, str(file_path))


def _verified_array(raw, spec, title, where):
    if spec.gz_md5 is not None:
        got = hashlib.md5(raw).hexdigest()
        other = _known(got) or _known(hashlib.md5(_decompressed(raw)).hexdigest())
        if got != spec.gz_md5 and other:
            raise ValueError(f"{title}: {where} is not {title}'s {spec.name}{other} (the data sets share "
                             "file names): point to a folder of the right data set")
        if got != spec.gz_md5:
            raise ValueError(
                f"{title}: {where} has MD5 {got}, expected {spec.gz_md5}. {title} publishes checksums of "
                f"its original .gz files only, so only the original files (not re-compressed copies) "
                f"can be verified. Replace or delete the file.")
    try:
        payload = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{title}: {where} is not a valid gzip file ({e})") from None
    if spec.payload_md5 is not None:
        got = hashlib.md5(payload).hexdigest()
        if got != spec.payload_md5 and _known(got):
            raise ValueError(f"{title}: {where} is not {title}'s {spec.name}{_known(got)} (the data sets share "
                             "file names): point to a folder of the right data set")
        if got != spec.payload_md5:
            raise ValueError(f"{title}: the decompressed bytes of {where} have MD5 {got}, expected "
                             f"{spec.payload_md5}; the file is corrupt or not {spec.name} of {title}. "
                             f"Replace or delete it.")
    array = parse_idx(payload, name=where)
    if array.dtype != np.uint8 or array.shape != tuple(spec.shape):
        raise ValueError(f"{title}: {where} holds a {array.dtype} array of shape {array.shape}, "
                         f"expected uint8 of shape {tuple(spec.shape)}")
    return array


def _decompressed(raw):
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error):
        return b""


def _missing(folder, files):
    return [f.name for f in files if not (folder / f.name).is_file()]


def _where_to_put(name, files):
    names = ", ".join(f.name for f in files)
    return (f"Put the four original files ({names}) in {cache_dir(name)}{os.sep}, or in "
            f"${ENV_VAR}{os.sep}{name}{os.sep}, or pass load_data(path=FOLDER).")


def _is_this_set(folder, files):
    """Whether ``folder``'s small train-labels file is this data set's (a cheap
    check before taking a folder whose files have the right names)."""
    spec = files[1]
    try:
        raw = (folder / spec.name).read_bytes()
    except OSError:
        return False
    return hashlib.md5(raw).hexdigest() == spec.gz_md5 if spec.gz_md5 is not None else \
        hashlib.md5(_decompressed(raw)).hexdigest() == spec.payload_md5


def _locate(name, title, files, mirrors, path, keras_cache=None):
    """The folder holding the four files, or a Keras ``.npz`` file (see the module's search order)."""
    if path is not None:
        folder = Path(os.fspath(path)).expanduser()
        if folder.suffix == ".npz" or folder.is_file():       # Keras: a file, relative to its cache
            for candidate in (folder, keras_cache_dir() / folder):
                if candidate.is_file():
                    return candidate
            raise FileNotFoundError(f"{title}: neither {folder} nor {keras_cache_dir() / folder} exists "
                                    "(fastnn reads a Keras .npz but does not download one; path= may also be a "
                                    "folder holding the four original .gz files)")
        missing = _missing(folder, files)
        if missing:
            raise FileNotFoundError(f"{title}: {folder} lacks {', '.join(missing)}. "
                                    f"path= must be a folder holding the four original .gz files.")
        return folder
    env = os.environ.get(ENV_VAR)
    if env and not _missing(Path(env).expanduser() / name, files):
        return Path(env).expanduser() / name
    if env and not _missing(Path(env).expanduser(), files) and _is_this_set(Path(env).expanduser(), files):
        return Path(env).expanduser()
    if not _missing(cache_dir(name), files):
        return cache_dir(name)
    if keras_cache is not None:
        theirs = keras_cache_dir() / keras_cache
        if theirs.is_file() or (theirs.is_dir() and not _missing(theirs, files)):
            return theirs
    cache = cache_dir(name)
    created = [p for p in (cache, *cache.parents) if not p.exists()]
    try:
        for spec in files:
            if not (cache / spec.name).is_file():
                _download_one(spec, cache, title, mirrors, _where_to_put(name, files))
    except BaseException:
        for folder in created:      # deepest first: only folders this call made, and only if empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return cache


def _download_one(spec, folder, title, mirrors, where_to_put):
    import http.client     # network modules load only when a download happens (import fastnn stays lean)
    errors = []
    for base in mirrors:
        url = base + spec.name
        try:
            _download(url, folder, spec, title)
            return
        # URLError, HTTPError and timeouts are OSErrors; a connection cut mid-body
        # raises http.client.IncompleteRead; a bad checksum is a ValueError.
        except (OSError, ValueError, http.client.HTTPException) as e:
            errors.append(f"  {url}: {e}")
    tried = "\n".join(errors) or "  (no mirrors)"
    raise FileNotFoundError(f"{title}: {spec.name} was not found and could not be downloaded.\n"
                            f"{where_to_put}\nTried:\n{tried}")


def _download(url, folder, spec, title):
    """Downloads ``url`` to ``folder/spec.name`` through a verified temporary file."""
    import tempfile
    import urllib.request
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{spec.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            print(f"Downloading data from {url}", file=sys.stderr)
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                bar = _ByteBar(spec.name, int(length) if length and length.isdigit() else None)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
                bar.close()
            out.flush()
            os.fsync(out.fileno())
        _verified_array(Path(tmp).read_bytes(), spec, title, f"the download from {url}")
        os.replace(tmp, folder / spec.name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _ByteBar:
    """Download progress on stderr: redrawn in place on a terminal, one final line otherwise."""

    def __init__(self, name, total, width=30, stream=None):
        self.name, self.total, self.width = name, total, width
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.start = self._last = time.perf_counter()

    def _line(self):
        mb = f"{self.done / 1e6:.1f}"
        if not self.total:
            return f"{self.name}: {mb} MB"
        filled = min(self.width, self.width * self.done // self.total)
        return f"{self.name}: [{'=' * filled}{'.' * (self.width - filled)}] {mb}/{self.total / 1e6:.1f} MB"

    def update(self, n):
        self.done += n
        now = time.perf_counter()
        if self.interactive and now - self._last >= 0.1:
            self._last = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def close(self):
        elapsed = time.perf_counter() - self.start
        self.stream.write(("\r" if self.interactive else "") + f"{self._line()} in {elapsed:.1f}s\n")
        self.stream.flush()
