"""Atomic file writes and a cross-node lock, shared by both engine sides, the datasets and the caches.

Readers never see a half-written file, and two writers racing on one path both succeed (the last
rename wins, with a complete file). ``cluster_lock`` serialises writers that may run on different
machines over a shared file system (NFS, Lustre), where ``fcntl``/``flock`` locks do not hold.
"""
import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from datetime import timedelta
from typing import BinaryIO, Callable, Iterator, Optional

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


def write_json(obj, fpath: str, indent: Optional[int] = 4) -> None:
    """Write JSON atomically: Dassl's formatting (also its split files'), or compact with ``indent=None``."""
    separators = (",", ": ") if indent is not None else (",", ":")
    atomic_write_bytes(fpath, json.dumps(obj, indent=indent, separators=separators).encode())


class LockBusy(Exception):
    """Another process holds the lock (raised only when the caller does not wait)."""


class HeldLock:
    """What ``cluster_lock`` yields: ``waited`` says whether another holder had to finish first (the caller
    should check again whether the work is done meanwhile); ``refresh()`` keeps a long holder's claim alive."""

    def __init__(self, lock, lifetime: timedelta, waited: bool):
        self._lock = lock
        self._lifetime = lifetime
        self._last = time.monotonic()
        self.waited = waited

    def refresh(self, every_s: float = 30.0) -> None:
        """Extend the lock's lifetime; cheap to call often (acts at most every ``every_s`` seconds)."""
        if time.monotonic() - self._last >= every_s:
            self._lock.refresh(self._lifetime)
            self._last = time.monotonic()


def _holder(lock) -> str:
    try:
        host, pid, _ = lock.details
    except Exception:  # released meanwhile, or unreadable
        return "another process"
    return f"process {pid} on {host}" + (" (this host)" if host == socket.getfqdn() else "")


@contextlib.contextmanager
def cluster_lock(path: str, lifetime_s: float = 300.0, wait: bool = True,
                 refresh_every_s: float = 0.0, what: str = "") -> Iterator[HeldLock]:
    """Hold an exclusive lock named by the file ``path`` (created beside the data it protects).

    ``flufl.lock`` builds the lock from hard links, which NFS and Lustre make atomic across nodes. A
    claim left by a dead process on this host is broken at once; one from another host expires
    ``lifetime_s`` after its holder last refreshed it. A live holder working longer either calls
    ``refresh()`` on the yielded object (the feature extraction does so every batch) or passes
    ``refresh_every_s`` for a background refresher (a training run). ``wait=False`` raises ``LockBusy``
    when the lock is held; ``what`` names the protected thing in the log and error lines.
    """
    from flufl.lock import Lock, LockState, TimeOutError  # a declared dependency (setup.py)

    lifetime = timedelta(seconds=lifetime_s)
    lock = Lock(path, lifetime=lifetime)
    what = what or path
    if lock.state == LockState.stale:
        logger.info("Removing a stale lock on %s (its process is gone)", what)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock.lockfile)
    waited = False
    try:
        lock.lock(timeout=timedelta(seconds=0.5))
    except TimeOutError:
        holder = _holder(lock)
        if not wait:
            raise LockBusy(f"{what} is being run by {holder}") from None
        logger.info("[wait] %s is held by %s; waiting for it to finish", what, holder)
        lock.lock()
        waited = True
    stop = threading.Event()

    def refresh_until_stopped() -> None:
        while not stop.wait(refresh_every_s):
            try:
                lock.refresh(lifetime)
            except Exception:  # the lock file is gone (deleted folder): nothing left to protect
                return

    if refresh_every_s > 0:
        threading.Thread(target=refresh_until_stopped, name="lock-refresh", daemon=True).start()
    try:
        yield HeldLock(lock, lifetime, waited)
    finally:
        stop.set()
        with contextlib.suppress(Exception):  # already gone (deleted folder)
            lock.unlock(unconditionally=True)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's total where it can tell)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
