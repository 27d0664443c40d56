"""Atomic file writes and a cross-node lock, shared by both engine sides, the datasets and the caches.

Readers never see a half-written file, and two writers racing on one path both succeed (the last
rename wins, with a complete file). ``cluster_lock`` serialises writers that may run on different
machines over a shared file system (NFS, Lustre), where ``fcntl``/``flock`` locks do not hold.
"""
import contextlib
import logging
import os
import tempfile
import time
from datetime import timedelta
from typing import BinaryIO, Callable, Iterator

logger = logging.getLogger(__name__)


def atomic_write(fpath: str, write_fn: Callable[[BinaryIO], None]) -> None:
    """Write ``fpath`` through ``write_fn(file)`` on a temporary file in the same folder, then rename."""
    directory = os.path.dirname(os.path.abspath(fpath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(fpath) + "-")
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, fpath)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(fpath: str, data: bytes) -> None:
    atomic_write(fpath, lambda f: f.write(data))


class _HeldLock:
    """What ``cluster_lock`` yields: ``refresh()`` keeps a long holder's claim alive."""

    def __init__(self, lock, lifetime: timedelta):
        self._lock = lock
        self._lifetime = lifetime
        self._last = time.monotonic()

    def refresh(self, every_s: float = 30.0) -> None:
        """Extend the lock's lifetime; cheap to call often (acts at most every ``every_s`` seconds)."""
        if time.monotonic() - self._last >= every_s:
            self._lock.refresh(self._lifetime)
            self._last = time.monotonic()


@contextlib.contextmanager
def cluster_lock(path: str, lifetime_s: float = 300.0) -> Iterator[_HeldLock]:
    """Hold an exclusive lock named by the file ``path`` (created beside the data it protects).

    ``flufl.lock`` builds the lock from hard links, which NFS and Lustre make atomic across nodes. A
    holder that dies leaves a claim that expires after ``lifetime_s``; a live holder working longer
    calls ``refresh()`` on the yielded object (the feature extraction does so every batch).
    """
    from flufl.lock import Lock  # a declared dependency (setup.py)

    lifetime = timedelta(seconds=lifetime_s)
    lock = Lock(path, lifetime=lifetime)
    lock.lock()
    try:
        yield _HeldLock(lock, lifetime)
    finally:
        if lock.is_locked:
            lock.unlock(unconditionally=True)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's total where it can tell)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
