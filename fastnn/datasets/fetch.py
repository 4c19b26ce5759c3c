"""Finding, downloading and verifying the gzip-compressed IDX files of a data set.

Search order for a data set called ``NAME`` (``"mnist"``, ``"fashion_mnist"``):

1. ``path=`` given to ``load_data``: that folder only (nothing is downloaded);
2. ``$FASTNN_DATA_DIR/NAME/``;
3. the cache ``~/.fastnn/datasets/NAME/``;
4. a download from the data set's public mirrors into the cache.

The first folder holding all four files wins. Every file is verified each time
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


def cache_dir(name):
    """``~/.fastnn/datasets/NAME`` (not created here)."""
    return Path(os.path.expanduser("~")) / ".fastnn" / "datasets" / name


def load_idx_set(name, title, files, mirrors, path=None):
    """``(x_train, y_train), (x_test, y_test)`` from four verified IDX files.

    ``files`` lists train images, train labels, test images, test labels.
    Raises ``FileNotFoundError`` when the files are neither found nor
    downloadable, ``ValueError`` when a file fails its checksum or is malformed.
    """
    folder = _locate(name, title, files, mirrors, path)
    x_train, y_train, x_test, y_test = (read_verified(folder / f.name, f, title) for f in files)
    return (x_train, y_train), (x_test, y_test)


def read_verified(file_path, spec, title):
    """The uint8 array of shape ``spec.shape`` stored in ``file_path``, after
    checking its checksum(s), its IDX structure and its shape."""
    return _verified_array(Path(file_path).read_bytes(), spec, title, str(file_path))


def _verified_array(raw, spec, title, where):
    if spec.gz_md5 is not None:
        got = hashlib.md5(raw).hexdigest()
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
        if got != spec.payload_md5:
            raise ValueError(f"{title}: the decompressed bytes of {where} have MD5 {got}, expected "
                             f"{spec.payload_md5}; the file is corrupt or not {spec.name} of {title}. "
                             f"Replace or delete it.")
    array = parse_idx(payload, name=where)
    if array.dtype != np.uint8 or array.shape != tuple(spec.shape):
        raise ValueError(f"{title}: {where} holds a {array.dtype} array of shape {array.shape}, "
                         f"expected uint8 of shape {tuple(spec.shape)}")
    return array


def _missing(folder, files):
    return [f.name for f in files if not (folder / f.name).is_file()]


def _where_to_put(name, files):
    names = ", ".join(f.name for f in files)
    return (f"Put the four original files ({names}) in {cache_dir(name)}{os.sep}, or in "
            f"${ENV_VAR}{os.sep}{name}{os.sep}, or pass load_data(path=FOLDER).")


def _locate(name, title, files, mirrors, path):
    if path is not None:
        folder = Path(os.fspath(path)).expanduser()
        missing = _missing(folder, files)
        if missing:
            raise FileNotFoundError(f"{title}: {folder} lacks {', '.join(missing)}. "
                                    f"path= must be a folder holding the four original .gz files.")
        return folder
    env = os.environ.get(ENV_VAR)
    candidates = ([Path(env).expanduser() / name] if env else []) + [cache_dir(name)]
    for folder in candidates:
        if not _missing(folder, files):
            return folder
    cache = cache_dir(name)
    for spec in files:
        if not (cache / spec.name).is_file():
            _download_one(spec, cache, title, mirrors, _where_to_put(name, files))
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
