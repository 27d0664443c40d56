"""A run's identity: the part of its config that can change its result, and the lock on its folder.

Two runs with the same identity give the same result, so a finished one may be reused; two with
different identities must never share a folder. The identity is the merged config minus the keys in
``LAUNCH_ONLY_KEYS`` (where the data and outputs live, how many loader workers, how often to print,
the evaluation batch size): those change how a run is launched, not what it computes.

Resuming a checkpoint also ignores the ``TEST`` node (evaluation settings do not change what is
trained): ``config_fingerprint`` is that narrower hash, stored in checkpoints.
"""
import hashlib
import logging
import os
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, Mapping, Optional, Tuple

from engine.fileio import LockBusy, cluster_lock

logger = logging.getLogger(__name__)

# Keys (or whole nodes) that never change a run's result.
LAUNCH_ONLY_KEYS: Tuple[str, ...] = (
    "OUTPUT_DIR", "RESUME", "VERBOSE", "USE_CUDA", "DATASET.ROOT", "FEATURE_CACHE.DIR",
    "DATALOADER.NUM_WORKERS", "DATALOADER.TEST.BATCH_SIZE", "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ",
    "TRAIN.RESUME_SAVE_S", "FEATURE_CACHE.BATCH_SIZE", "FEATURE_CACHE.NUM_WORKERS", "FEATURE_CACHE.MAX_GB",
    "TRAINER.COOP.TRUNCATE_CONTEXT",  # exact: the same logits (tests/test_coop_truncation.py)
    "TRAINER.COCOOP.PROMPTS_PER_CALL",  # a memory bound on one text-encoder call (tests/test_cocoop.py)
)
# Resuming may also change how the model is evaluated (kept as first released, so checkpoints written
# before this module existed still resume).
RESUME_IGNORED_KEYS: Tuple[str, ...] = ("OUTPUT_DIR", "RESUME", "VERBOSE", "DATALOADER.NUM_WORKERS",
                                        "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ", "TEST", "USE_CUDA",
                                        "DATASET.ROOT", "FEATURE_CACHE.DIR", "TRAIN.RESUME_SAVE_S",
                                        "FEATURE_CACHE.BATCH_SIZE", "FEATURE_CACHE.NUM_WORKERS", "FEATURE_CACHE.MAX_GB",
                                        "TRAINER.COOP.TRUNCATE_CONTEXT", "TRAINER.COCOOP.PROMPTS_PER_CALL")


def _ignored(name: str, ignore: Iterable[str]) -> bool:
    return any(name == k or name.startswith(k + ".") for k in ignore)


def flatten_config(cfg, ignore: Iterable[str] = LAUNCH_ONLY_KEYS) -> Dict[str, str]:
    """``{"OPTIM.LR": "0.002", ...}``: every leaf of a (yacs) config as ``repr``, minus ``ignore``."""
    ignore = tuple(ignore)
    flat: Dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if _ignored(name, ignore):
                continue
            if hasattr(value, "items"):
                walk(value, name + ".")
            else:
                flat[name] = repr(value)

    walk(cfg, "")
    return flat


def fingerprint(flat: Mapping[str, str], length: int = 16) -> str:
    """A stable hex digest of a flattened config (order-free)."""
    return hashlib.sha256(repr(sorted(flat.items())).encode()).hexdigest()[:length]


def config_fingerprint(cfg) -> str:
    """Hash of the keys that determine training; a checkpoint is resumed only under the same value."""
    return fingerprint(flatten_config(cfg, RESUME_IGNORED_KEYS))


def deviation(flat: Mapping[str, str], reference: Mapping[str, str]) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    """``{key: (reference value, this value)}`` for every key whose value differs (None: key absent)."""
    keys = sorted(set(flat) | set(reference))
    return {k: (reference.get(k), flat.get(k)) for k in keys if reference.get(k) != flat.get(k)}


def variant_suffix(dev: Mapping[str, Tuple[Optional[str], Optional[str]]]) -> str:
    """8 hex digits naming a set of changes from the recipe; the same changes give the same suffix."""
    return fingerprint({k: str(v[1]) for k, v in dev.items()}, length=8) if dev else ""


def describe_deviation(dev: Mapping[str, Tuple[Optional[str], Optional[str]]], limit: int = 6) -> str:
    """``OPTIM.MAX_EPOCH 200 -> 2, INPUT.SIZE (224, 224) -> (32, 32)`` (at most ``limit`` items)."""
    items = [f"{k} {a} -> {b}" for k, (a, b) in dev.items()]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# ---- the run folder: lock and failure mark ------------------------------------------------------
LOCK_FILE = ".lock"
FAILED_FILE = "FAILED"
_LOCK_LIFETIME_S = 600.0   # a lock not refreshed for this long (a dead node) may be broken
_REFRESH_EVERY_S = 60.0


RunLocked = LockBusy  # another process holds the run folder's lock (raised only when not waiting)


@contextmanager
def run_lock(folder: str, wait: bool = True) -> Iterator[bool]:
    """Hold ``folder/.lock`` for a run (``engine.fileio.cluster_lock``: safe across processes and NFS nodes).

    Yields True when the lock had to be waited for (another launch of the same run was in progress:
    the caller should check again whether the run has finished meanwhile). A lock left by a dead
    process on this host is broken at once; one from another host expires 10 minutes after its
    holder stopped refreshing it (a background thread refreshes it every minute). With ``wait=False`` a
    held lock raises ``RunLocked``.
    """
    os.makedirs(folder, exist_ok=True)
    with cluster_lock(os.path.join(folder, LOCK_FILE), lifetime_s=_LOCK_LIFETIME_S, wait=wait,
                      refresh_every_s=_REFRESH_EVERY_S, what=folder) as held:
        yield held.waited


def mark_failed(folder: str, message: str) -> None:
    """Leave ``folder/FAILED`` (the error line): the run is not finished and will run again."""
    try:
        with open(os.path.join(folder, FAILED_FILE), "w") as f:
            f.write(message.strip() + "\n")
    except OSError:
        pass


def clear_failed(folder: str) -> None:
    try:
        os.unlink(os.path.join(folder, FAILED_FILE))
    except FileNotFoundError:
        pass
