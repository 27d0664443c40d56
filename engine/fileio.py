"""Atomic file writes, shared by both engine sides, the datasets and the caches.

Readers never see a half-written file, and two writers racing on one path both succeed (the last
rename wins, with a complete file).
"""
import os
import tempfile
from typing import BinaryIO, Callable


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
