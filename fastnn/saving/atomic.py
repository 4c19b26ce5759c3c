"""Crash-safe file writes: a temporary file in the target's directory, then a rename.

``os.replace`` is atomic on POSIX and Windows within one file system, so a
reader (or a process that restarts after a crash) sees either the previous
file or the complete new one under the final name, never a partial write.
A crash can leave a hidden ``.NAME.*.tmp`` file beside the target; it is
never mistaken for the target.
"""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path):
    """Yields a binary file object; on a clean exit its bytes replace ``path``.

    The data is flushed and fsynced before the rename, and the directory
    after it. On an exception the temporary file is removed and ``path`` is
    left as it was. The new file gets the permissions ``open()`` would give it
    (0o666 less the umask), not ``mkstemp``'s private 0o600."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot write {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot write {path!r}: it is a directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _umask():
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    """Makes the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
