"""Crash-safe file writes: a temporary file in the target's directory, then a rename.

``os.replace`` is atomic on POSIX and Windows within one file system, so a
reader (or a process that restarts after a crash) sees either the previous
file or the complete new one under the final name, never a partial write.
A crash can leave a hidden ``.NAME.HOST-PID.*.tmp`` file beside the target; it is
never mistaken for the target, and the next write to the same target removes
it once the process that made it (same host, that PID) is gone.
"""
import contextlib
import hashlib
import os
import socket
import tempfile

from ..utils.interrupts import held_interrupts

# Temp names carry the writer's host, so a shared (network) directory never
# has a live writer's file on another machine taken for a dead one's.
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


@contextlib.contextmanager
def atomic_write(path):
    """Yields a binary file object; on a clean exit its bytes replace ``path``.

    The data is flushed and fsynced before the rename, and the directory
    after it. On an exception the temporary file is removed and ``path`` is
    left as it was. The new file gets the permissions ``open()`` would give it
    (0o666 less the umask), not ``mkstemp``'s private 0o600.

    Ctrl-C is held for the whole write (``held_interrupts``): one that came
    is raised as ``KeyboardInterrupt`` before the rename, so ``path`` keeps
    its old content and no temporary file is left. An OSError while writing
    (a full disk) names ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot write {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot write {path!r}: it is a directory")
    with held_interrupts() as held:
        remove_stale_temp_files(path)
        prefix = f".{os.path.basename(path)}.{_HOST}-{os.getpid()}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        try:
            try:
                with os.fdopen(fd, "wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
                if held.pending:
                    raise KeyboardInterrupt
                os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, path)
            except OSError as e:
                if e.errno is None:
                    raise
                raise type(e)(e.errno, f"{e.strerror}; the previous file, if any, is unchanged", path) from e
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(directory)


def remove_stale_temp_files(path):
    """Removes the temporary files that writers of ``path`` on this host left
    when they died (killed mid-write). A file whose process still runs, or
    whose name this module did not make, is left alone."""
    directory = os.path.dirname(os.path.abspath(path))
    start = f".{os.path.basename(path)}.{_HOST}-"
    try:
        names = [n for n in os.listdir(directory) if n.startswith(start) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(start):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def _alive(pid):
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:     # EPERM: it exists, under another user
        return True
    return True


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
