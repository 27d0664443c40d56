"""The feature cache on disk: keys, a locked store of entries grown by chunks of views, listing and pruning.

An entry (``<root>/<kind>-<digest>/``: ``meta.json`` and chunks ``views-<start>-<stop>.pt``) holds the views of
one ordered image list under one transform, weights file and seed; an interrupted extraction leaves *part*
files that the next one resumes after. Keys, format, locking and parts: docs/feature-cache.md.
"""
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import zlib
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from engine import RunInterrupted, atomic_write
from engine.fileio import cluster_lock
from engine.libraries import torch_load
from engine.logs import progress_bar
from features.extraction import is_deterministic

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 2
CHUNK_RE = re.compile(r"^views-(\d{6})-(\d{6})\.pt$")
PART_RE = re.compile(r"^part-(\d{6})-(\d{6})-(\d{9})-(\d{9})\.pt$")
COMMIT_EVERY_S = 60.0
COMMIT_SHARE = 0.05  # at most this share of the extraction's time goes to committing parts
PRUNE_HINT = "python -m features prune {root} --older-than-days 30"

# build(start, stop, first) -> (i, features [stop - start, b, D]) for images first.., in order
Encoder = Callable[[int, int, int], Iterable[Tuple[int, torch.Tensor]]]


class FeatureCacheError(RuntimeError):
    """The cache cannot hold or read an entry (disk full, over its bound); the message says what to do."""


def view_checksums(features: torch.Tensor) -> List[int]:
    """One CRC-32 per view of ``[V, N, D]``: cheap enough to check on every load (GB/s)."""
    return [zlib.crc32(v.contiguous().reshape(-1).view(torch.uint8).numpy()) for v in features]


def cache_key(backbone, items: Sequence, transform, seed: Optional[int]) -> Dict:
    """What the features depend on. ``seed`` None: deterministic transform (one view); the number of views is
    not in the key (an entry grows by views, and any prefix of it is valid)."""
    deterministic = seed is None or is_deterministic(transform)
    return {
        "version": CACHE_FORMAT_VERSION,
        "kind": "plain" if deterministic else "views",
        "backbone": backbone.name,
        "weights": backbone.fingerprint(),
        "precision": backbone.precision,
        "items": hashlib.sha256("".join(f"{i.impath}\t{i.label}\n" for i in items).encode()).hexdigest(),
        "num_items": len(items),
        "transform": repr(transform),
        "seed": None if deterministic else int(seed),
    }


def _dir_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # removed meanwhile (a writer's temporary file)
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


def _files(directory: str, pattern: re.Pattern) -> List[Tuple]:
    """``(*numbers, path)`` of the files in ``directory`` named like ``pattern``, sorted."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [tuple(int(g) for g in m.groups()) + (os.path.join(directory, name),)
             for name in names if (m := pattern.match(name))]
    return sorted(found)


def _reach(spans: List[Tuple], pos: int, end: int) -> List[Tuple]:
    """Spans ``(a, b, ...)`` covering ``pos..`` contiguously towards ``end`` (greedy: the longest reach each step)."""
    plan = []
    while pos < end:
        reach = [s for s in spans if s[0] <= pos < s[1]]
        if not reach:
            break
        plan.append(max(reach, key=lambda s: s[1]))
        pos = plan[-1][1]
    return plan


def _load_checked(path: str, key: Dict, check) -> Optional[dict]:
    """A cache file's content if it loads, matches ``key`` and passes ``check``; else None, the file removed."""
    try:
        data = torch_load(path, map_location="cpu", weights_only=True, mmap=True)
        ok = data.get("key") == key and check(data)
    except Exception as err:  # a truncated or corrupted file
        logger.warning("Feature cache file %s is unreadable (%s); encoding it again", path, err)
        ok = None
    if ok:
        return data
    if ok is not None:
        logger.warning("Feature cache file %s does not match its key or checksum; encoding it again", path)
    Path(path).unlink(missing_ok=True)
    return None


class FeatureStore:
    """Feature-cache entries under ``root``, one folder per key, grown by chunks of views. A write past
    ``max_bytes`` (0: unbounded) or the free disk space is refused with a message saying how to prune."""

    def __init__(self, root: str, max_bytes: int = 0):
        self.root = root
        self.max_bytes = int(max_bytes)

    def entry_dir(self, key: Dict) -> str:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return os.path.join(self.root, f"{key.get('kind', 'entry')}-{digest}")

    # ---- reading ----------------------------------------------------------------------------
    def _load(self, plan, key: Dict, views: int) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """The first ``views`` views from ``plan``'s chunks, checked; None (and the bad file removed) if one fails."""
        parts, labels = [], None
        for start, stop, path in plan:
            use = min(stop, views) - start
            chunk = _load_checked(path, key, lambda c, start=start, stop=stop, use=use: (
                c["start"] == start and c["features"].dim() == 3 and c["features"].shape[0] == stop - start
                and c["features"].shape[1] == c["labels"].shape[0]
                and c["checksums"][:use] == view_checksums(c["features"][:use])))
            if chunk is None:
                return None
            parts.append(chunk["features"][:use])
            labels = chunk["labels"]
        return (parts[0] if len(parts) == 1 else torch.cat(parts)), labels

    def _read(self, key: Dict, views: int) -> Tuple[Optional[Tuple[torch.Tensor, torch.Tensor]], int]:
        """``((features, labels) or None, views covered)``; retries once a bad chunk has been removed."""
        directory = self.entry_dir(key)
        for _ in range(3):
            plan = _reach(_files(directory, CHUNK_RE), 0, views)
            covered = min(plan[-1][1], views) if plan else 0
            if covered < views:
                return None, covered
            loaded = self._load(plan, key, views)
            if loaded is not None:
                return loaded, covered
        return None, 0

    # ---- writing ----------------------------------------------------------------------------
    def _check_space(self, nbytes: int) -> None:
        free = shutil.disk_usage(self.root).free
        margin = 512 * 2**20
        hint = (f"prune it ({PRUNE_HINT.format(root=self.root)}), point FEATURE_CACHE.DIR to a larger disk, "
                "or use fewer views (FEATURE_CACHE.NUM_VIEWS k)")
        if 2 * nbytes + margin > free:  # the finished chunk is written before its parts are removed
            raise FeatureCacheError(f"The feature cache {self.root} needs {2 * nbytes / 2**30:.2f} GB more while "
                                    f"writing but the disk has {free / 2**30:.2f} GB free: {hint}")
        if self.max_bytes:
            used = _dir_bytes(self.root)
            if used + nbytes > self.max_bytes:
                raise FeatureCacheError(
                    f"The feature cache {self.root} holds {used / 2**30:.2f} GB; {nbytes / 2**30:.2f} GB more would pass "
                    f"FEATURE_CACHE.MAX_GB ({self.max_bytes / 2**30:.2f}): {hint}, or raise FEATURE_CACHE.MAX_GB")

    def _resume(self, directory: str, key: Dict, start: int, stop: int, n_items: int):
        """``(out, first)``: the parts of an interrupted extraction of views ``start..stop-1``, images ``0..first-1``
        copied into ``out`` (``[stop - start, N, D]``; None when there are none)."""
        spans = [(a, b, s, e, p) for s, e, a, b, p in _files(directory, PART_RE) if s <= start and e >= stop]
        out, first = None, 0
        for a, b, s, e, path in _reach(spans, 0, n_items):
            part = _load_checked(path, key, lambda d, a=a, b=b, s=s, e=e: (
                d["features"].shape[:2] == (e - s, b - a) and d["checksums"] == view_checksums(d["features"])))
            if part is None:
                break
            if out is None:
                out = torch.empty(stop - start, n_items, part["features"].shape[-1], dtype=torch.float16)
            out[:, first:b] = part["features"][start - s:stop - s, first - a:]
            first = b
        return out, first

    def _commit_part(self, directory: str, key: Dict, start: int, stop: int, first: int, features: torch.Tensor) -> None:
        features = features.contiguous()
        end = first + features.shape[1]
        data = {"key": key, "features": features, "checksums": view_checksums(features)}
        atomic_write(os.path.join(directory, f"part-{start:06d}-{stop:06d}-{first:09d}-{end:09d}.pt"),
                     lambda f: torch.save(data, f))

    def _encode(self, directory: str, key: Dict, start: int, stop: int, n_items: int, encode: Encoder, lock,
                desc: str) -> torch.Tensor:
        """Views ``start..stop-1`` of every image, resuming after the parts an earlier extraction committed."""
        n_views = stop - start
        out, first = self._resume(directory, key, start, stop, n_items)
        if first:
            logger.info("Resuming the extraction of %s: %d of %d images already encoded (%d of %d views) in %s",
                        desc, first, n_items, first * n_views, n_items * n_views, directory)
        done = committed = first
        last_commit, commit_s = time.monotonic(), 0.0
        bar = progress_bar(n_items * n_views, desc, unit="view", unit_scale=True, initial=first * n_views)
        batches = encode(start, stop, first)
        try:
            for i, feats in batches:
                if out is None:
                    out = torch.empty(n_views, n_items, feats.shape[-1], dtype=torch.float16)
                out[:, i:i + feats.shape[1]] = feats
                done = i + feats.shape[1]
                bar.update(feats.shape[0] * feats.shape[1])
                lock.refresh()
                if time.monotonic() - last_commit >= max(COMMIT_EVERY_S, commit_s / COMMIT_SHARE):
                    commit_start = time.monotonic()
                    self._commit_part(directory, key, start, stop, committed, out[:, committed:done])
                    committed, last_commit = done, time.monotonic()
                    commit_s = last_commit - commit_start
        except BaseException as err:
            bar.close()
            if done > committed:
                self._commit_part(directory, key, start, stop, committed, out[:, committed:done])
            kept = (f"kept {done * n_views:,} of {n_items * n_views:,} views ({done} of {n_items} images) of {desc} "
                    f"in {directory}")
            if isinstance(err, (RunInterrupted, KeyboardInterrupt)):
                logger.warning("Feature extraction interrupted: %s; the same command continues from there", kept)
                if isinstance(err, RunInterrupted):
                    raise RunInterrupted(f"{err}: {kept}; run the same command to continue") from None
            elif done:
                logger.info("Feature extraction stopped (%s): %s", type(err).__name__, kept)
            raise
        finally:
            if hasattr(batches, "close"):
                batches.close()
        bar.close()
        return out if out is not None else torch.empty(n_views, 0, 0, dtype=torch.float16)

    def get(self, key: Dict, encode: Encoder, views: int, labels: torch.Tensor, describe: Optional[Dict] = None,
            bytes_per_view: int = 0, desc: str = "images") -> Dict:
        """The first ``views`` views of the entry for ``key``, encoding only those it lacks with ``encode``
        (``features.extraction.encode_batches``). Concurrent callers serialise on the entry's lock, so each
        view is encoded once."""
        directory = self.entry_dir(key)
        loaded, covered = self._read(key, views)
        seconds = 0.0
        if loaded is None:
            os.makedirs(directory, exist_ok=True)
            with cluster_lock(directory + ".lock") as lock:
                loaded, covered = self._read(key, views)  # another process may have encoded them meanwhile
                if loaded is None:
                    start = time.time()
                    self._check_space((views - covered) * bytes_per_view)
                    meta = os.path.join(directory, "meta.json")
                    if not os.path.isfile(meta):
                        data = {"key": key, "describe": describe or {}, "created": time.time()}
                        atomic_write(meta, lambda f: f.write(json.dumps(data, indent=1).encode()))
                    features = self._encode(directory, key, covered, views, len(labels), encode, lock, desc)
                    chunk = {"key": key, "start": covered, "stop": views, "features": features, "labels": labels,
                             "checksums": view_checksums(features)}
                    atomic_write(os.path.join(directory, f"views-{covered:06d}-{views:06d}.pt"),
                                 lambda f: torch.save(chunk, f))
                    for *_, path in _files(directory, PART_RE):  # the chunk holds them now (or they are stale)
                        Path(path).unlink(missing_ok=True)
                    seconds = time.time() - start
                    logger.info("Cached %d view(s) x %d images -> %s (%.1fs)", views - covered, features.shape[1],
                                directory, seconds)
                    loaded, _ = self._read(key, views)
                    if loaded is None:
                        raise FeatureCacheError(f"The feature cache entry {directory} cannot be read back after "
                                                "writing it; check the disk")
        with contextlib.suppress(OSError):  # a read-only cache still serves
            os.utime(directory)  # last use, for pruning
        return {"features": loaded[0], "labels": loaded[1], "seconds": seconds, "encoded_views": views - covered,
                "reused_views": covered, "path": directory}


# ---- disk use and pruning ----------------------------------------------------------------------------
def list_entries(root: str) -> List[Dict]:
    """Every entry under ``root``: folder, views held, parts of an interrupted extraction, bytes, last use,
    description."""
    entries = []
    if not os.path.isdir(root):
        return entries
    for name in sorted(os.listdir(root)):
        directory = os.path.join(root, name)
        if not os.path.isdir(directory):
            continue
        meta = {}
        # written last by nobody yet, or damaged: the entry still counts
        with contextlib.suppress(OSError, ValueError), open(os.path.join(directory, "meta.json")) as f:
            meta = json.load(f)
        plan = _reach(_files(directory, CHUNK_RE), 0, 1 << 30)
        entries.append({"path": directory, "views": plan[-1][1] if plan else 0,
                        "parts": len(_files(directory, PART_RE)), "bytes": _dir_bytes(directory),
                        "last_used": os.path.getmtime(directory), "key": meta.get("key", {}),
                        "describe": meta.get("describe", {})})
    return entries


def prune(root: str, older_than_days: Optional[float] = None, keep_gb: Optional[float] = None,
          dry_run: bool = False) -> List[Dict]:
    """Remove (and return) entries unused for ``older_than_days``, then the least recently used until
    ``keep_gb`` remain; a job using one keeps its open files."""
    entries = sorted(list_entries(root), key=lambda e: e["last_used"])
    now = time.time()
    doomed = [e for e in entries if older_than_days is not None and now - e["last_used"] > older_than_days * 86400]
    if keep_gb is not None:
        kept = [e for e in entries if e not in doomed]
        total = sum(e["bytes"] for e in kept)
        for e in kept:
            if total <= keep_gb * 2**30:
                break
            doomed.append(e)
            total -= e["bytes"]
    for e in doomed:
        if not dry_run:
            with cluster_lock(e["path"] + ".lock"):
                shutil.rmtree(e["path"], ignore_errors=True)
            Path(e["path"] + ".lock").unlink(missing_ok=True)
    return doomed
