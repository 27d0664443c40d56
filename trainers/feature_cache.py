"""Cache of frozen CLIP image features: the image encoder runs once per distinct image view.

An *entry* holds the features of one ordered image list under one transform, one weights file and
one seed: a folder ``<root>/<kind>-<digest>/`` with ``meta.json`` (the key, a readable description)
and chunk files ``views-<start>-<stop>.pt``, each holding views ``start..stop-1`` of every image as
``[views, N, D]`` fp16 with a CRC per view. View ``v`` of image ``p`` is drawn with the torch RNG
seeded by (seed, p relative to the datasets root, v), so view ``v`` is the same whatever the number
of views asked, the batch order or the number of loader workers. Hence a prefix of an entry is valid:
an entry holding 200 views serves a run needing 100, and a run needing 200 after one that stored 100
encodes only views 100..199. The key holds everything that changes the features, and nothing else:
not the split's name (ImageNet's identical val and test lists share one entry), not the method.

Writers serialise on a ``flufl.lock`` lock (holds across cluster nodes on NFS/Lustre) and write chunks
atomically (temporary file + rename); a truncated or corrupted chunk fails to load or fails its CRC
and is encoded again.

Extraction (``extract_features``) decodes each image once for all its views; workers send uint8
pixels, which are copied (pinned, asynchronously on CUDA) to the device and normalised there, in
batches of ``FEATURE_CACHE.BATCH_SIZE`` views; on CUDA the encoder runs channels-last.

``python -m trainers.feature_cache du|prune ROOT`` reports the cache's disk use or prunes it.
"""
import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import time
import zlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from engine import atomic_write, read_image
from engine.fileio import available_cpus, cluster_lock

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 2
CHUNK_RE = re.compile(r"^views-(\d{6})-(\d{6})\.pt$")
DETERMINISTIC_STEPS = ("Resize", "CenterCrop", "ToTensor", "PILToTensor", "Normalize", "ConvertImageDtype",
                       "Compose")


class FeatureCacheError(RuntimeError):
    """The cache cannot hold or read an entry (disk full, over its bound); the message says what to do."""


# ---- views ------------------------------------------------------------------------------------------
def view_seed(seed: int, impath: str, view: int) -> int:
    """Seed of one view; ``impath`` is relative to the datasets root, so moving the root keeps the views."""
    digest = hashlib.sha256(f"{seed}|{impath}|{view}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _steps(transform) -> list:
    return list(getattr(transform, "transforms", [transform]))


def is_deterministic(transform) -> bool:
    """True when every step of ``transform`` is a known deterministic one: all views are the same view.

    Then one view serves every epoch, exactly (a train transform without random crop or flip).
    """
    return all(type(s).__name__ in DETERMINISTIC_STEPS for s in _steps(transform))


def split_transform(transform) -> Optional[Tuple[Callable, torch.Tensor, torch.Tensor]]:
    """``(pil_part, mean, std)`` when ``transform`` is PIL steps, then ``ToTensor``, then an optional ``Normalize``.

    The PIL part runs in the loader's workers and yields uint8; ``ToTensor`` (``/255``) and ``Normalize``
    run on the device, with the same float32 operations, so the pixels are bit-identical. ``None`` when
    the transform has another shape (then the whole transform runs in the workers, in float32).
    """
    from torchvision import transforms as T

    steps = _steps(transform)
    names = [type(s).__name__ for s in steps]
    if "ToTensor" not in names:
        return None
    i = names.index("ToTensor")
    tail = steps[i + 1:]
    if len(tail) > 1 or (tail and names[i + 1] != "Normalize"):
        return None
    if tail:
        mean = torch.as_tensor(tail[0].mean, dtype=torch.float32)
        std = torch.as_tensor(tail[0].std, dtype=torch.float32)
    else:
        mean, std = torch.zeros(3), torch.ones(3)
    return T.Compose(steps[:i]), mean, std


class SeededViews(Dataset):
    """Item ``i``: image ``i`` decoded once, then its views ``start..stop-1``, each under its own seeded RNG.

    Yields uint8 ``[views, 3, H, W]`` when the transform splits (``split_transform``), else the full
    transform's float32 output. A failure is returned, not raised, so the main process can report it
    as one line (a raise in a worker becomes a page-long wrapped traceback).
    """

    def __init__(self, items: Sequence, transform, start: int, stop: int, seed: int, root: str = ""):
        from torchvision.transforms.functional import pil_to_tensor

        self.items = items
        self.start, self.stop = start, stop
        self.seed = seed
        self.root = root
        split = split_transform(transform)
        if split is None:
            self.transform, self.to_tensor = transform, None
        else:
            self.transform, self.to_tensor = split[0], pil_to_tensor

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int):
        item = self.items[idx]
        try:
            img = read_image(item.impath)
            name = os.path.relpath(item.impath, self.root) if self.root else item.impath
            out = []
            with torch.random.fork_rng(devices=[]):
                for view in range(self.start, self.stop):
                    torch.manual_seed(view_seed(self.seed, name, view))
                    x = self.transform(img)
                    out.append(self.to_tensor(x) if self.to_tensor is not None else x)
            return torch.stack(out), idx
        except Exception as err:  # reported by the main process, one line
            return None, (idx, type(err).__name__, str(err).splitlines()[0] if str(err) else repr(err), item.impath)


def _collate(samples):
    failed = [s[1] for s in samples if s[0] is None]
    if failed:
        return None, failed[0]
    return torch.stack([s[0] for s in samples]), torch.tensor([s[1] for s in samples])


def _raise_item_error(info) -> None:
    from engine import CorruptImageError

    _, kind, message, path = info
    if kind == "FileNotFoundError":
        raise FileNotFoundError(message if path in message else f"{message} ({path})")
    if kind == "CorruptImageError":
        raise CorruptImageError(message)
    raise CorruptImageError(f"Cannot prepare image {path} ({kind}: {message}). Replace or remove the file "
                            "(and its split entry).")


def default_workers(device: torch.device) -> int:
    """Loader workers from the machine's cores: all of them on CUDA (decoding feeds the GPU), half on a CPU,
    where the encoder itself needs the cores."""
    cores = available_cpus()
    return max(1, min(16, cores if device.type == "cuda" else cores // 2))


def default_batch_size(device: torch.device) -> int:
    return 512 if device.type == "cuda" else 64


class _Normalizer:
    """uint8 (or float) views on the host -> normalised model input on the device."""

    def __init__(self, backbone, mean: Optional[torch.Tensor], std: Optional[torch.Tensor]):
        self.device = backbone.device
        self.channels_last = backbone.device.type == "cuda"
        self.mean = None if mean is None else mean.to(self.device).view(1, -1, 1, 1)
        self.std = None if std is None else std.to(self.device).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.to(torch.float32).div_(255).sub_(self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


@torch.no_grad()
def extract_features(backbone, items: Sequence, transform, views: int, seed: int, batch_size: int,
                     num_workers: int, desc: str, root: str = "", start: int = 0,
                     heartbeat: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """Encode views ``start..views-1`` of every item; returns ``[views - start, N, D]`` fp16 on the CPU.

    ``batch_size``: views per encoder call (0: the device's default); ``num_workers`` < 0: from the cores;
    ``root``: the datasets root (view seeds use paths relative to it); ``heartbeat``: called every batch
    (keeps the cache lock alive). A missing or undecodable image raises one error naming the file.
    """
    device = backbone.device
    batch_size = batch_size if batch_size > 0 else default_batch_size(device)
    num_workers = num_workers if num_workers >= 0 else default_workers(device)
    n_views = views - start
    split = split_transform(transform)
    normalize = _Normalizer(backbone, *(split[1:] if split else (None, None)))
    images_per_batch = max(1, batch_size // n_views)  # a loader batch holds about ``batch_size`` views
    cuda = device.type == "cuda"
    loader = DataLoader(SeededViews(items, transform, start, views, seed, root), batch_size=images_per_batch,
                        shuffle=False, num_workers=num_workers, pin_memory=cuda, collate_fn=_collate,
                        prefetch_factor=4 if num_workers else None, persistent_workers=False)
    out = torch.empty(n_views, len(items), backbone.embed_dim, dtype=torch.float16)
    visual = backbone.model.visual
    if cuda:
        visual.to(memory_format=torch.channels_last)
    old_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cuda
    pending: List[Tuple[torch.Tensor, torch.Tensor, Optional[torch.cuda.Event], int]] = []

    def drain(keep: int) -> None:  # copy finished batches' features into ``out``; keep the newest ``keep``
        while len(pending) > keep:
            feats, idx, event, b = pending.pop(0)
            if event is not None:
                event.synchronize()
            out[:, idx] = feats.view(b, n_views, -1).transpose(0, 1)

    try:
        for images, idx in tqdm(loader, desc=desc, unit="batch", leave=False, disable=None):
            if images is None:
                _raise_item_error(idx)
            b = images.shape[0]
            flat = images.flatten(0, 1)
            parts = []
            for s in range(0, flat.shape[0], batch_size):  # a batch of one image may hold more views
                parts.append(backbone.encode_image(normalize(flat[s:s + batch_size])).to(torch.float16))
            feats = torch.cat(parts) if len(parts) > 1 else parts[0]
            event = None
            if cuda:  # asynchronous copy back; waited for one batch later, so the GPU never idles on it
                host = torch.empty(feats.shape, dtype=feats.dtype, pin_memory=True)
                host.copy_(feats, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                feats = host
            pending.append((feats, idx, event, b))
            drain(keep=1)
            if heartbeat is not None:
                heartbeat()
        drain(keep=0)
    finally:
        torch.backends.cudnn.benchmark = old_benchmark
        if cuda:
            visual.to(memory_format=torch.contiguous_format)
    return out


# ---- keys and the store -------------------------------------------------------------------------------
def items_digest(items: Sequence) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(f"{item.impath}\t{item.label}\n".encode())
    return h.hexdigest()


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
        "items": items_digest(items),
        "num_items": len(items),
        "transform": repr(transform),
        "seed": None if deterministic else int(seed),
    }


def _dir_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


class FeatureStore:
    """Feature-cache entries under ``root``, one folder per key, grown by chunks of views.

    ``max_bytes`` (0: unbounded) bounds the whole cache: an entry that would pass it is refused with a
    message saying how to prune. A write that the free disk space cannot hold is refused the same way.
    """

    def __init__(self, root: str, max_bytes: int = 0):
        self.root = root
        self.max_bytes = int(max_bytes)
        os.makedirs(root, exist_ok=True)

    def entry_dir(self, key: Dict) -> str:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return os.path.join(self.root, f"{key.get('kind', 'entry')}-{digest}")

    # kept for callers that think of an entry as one path
    path = entry_dir

    @staticmethod
    def _chunks(directory: str) -> List[Tuple[int, int, str]]:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            m = CHUNK_RE.match(name)
            if m and int(m.group(2)) > int(m.group(1)):
                found.append((int(m.group(1)), int(m.group(2)), os.path.join(directory, name)))
        return sorted(found)

    @staticmethod
    def _plan(chunks: List[Tuple[int, int, str]], views: int) -> Tuple[List[Tuple[int, int, str]], int]:
        """Chunks covering views ``0..covered-1`` contiguously (greedy: the longest reach at every step)."""
        plan, pos = [], 0
        while pos < views:
            reach = [c for c in chunks if c[0] <= pos < c[1]]
            if not reach:
                break
            best = max(reach, key=lambda c: c[1])
            plan.append(best)
            pos = best[1]
        return plan, min(pos, views)

    def _load(self, plan, key: Dict, views: int) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """The first ``views`` views from ``plan``'s chunks, checked; None (and the bad file removed) if one fails."""
        parts, labels = [], None
        for start, stop, path in plan:
            use = min(stop, views) - start
            try:
                chunk = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                feats = chunk["features"]
                ok = (chunk.get("key") == key and chunk["start"] == start and feats.dim() == 3
                      and feats.shape[0] == stop - start and feats.shape[1] == chunk["labels"].shape[0]
                      and chunk["checksums"][:use] == view_checksums(feats[:use]))
            except Exception as err:  # truncated / corrupted file
                logger.warning("Feature cache file %s is unreadable (%s); encoding it again", path, err)
                ok = None
            if not ok:
                if ok is not None:
                    logger.warning("Feature cache file %s does not match its key or checksum; encoding it again", path)
                try:
                    os.remove(path)
                except OSError:
                    pass
                return None
            parts.append(feats[:use])
            labels = chunk["labels"]
        features = parts[0] if len(parts) == 1 else torch.cat(parts)
        return features, labels

    def _read(self, key: Dict, views: int) -> Tuple[Optional[Tuple[torch.Tensor, torch.Tensor]], int]:
        """``((features, labels) or None, views covered)``; retries once a bad chunk has been removed."""
        directory = self.entry_dir(key)
        for _ in range(3):
            plan, covered = self._plan(self._chunks(directory), views)
            if covered < views:
                return None, covered
            loaded = self._load(plan, key, views)
            if loaded is not None:
                return loaded, covered
        return None, 0

    def _check_space(self, nbytes: int) -> None:
        free = shutil.disk_usage(self.root).free
        margin = 512 * 2**20
        hint = (f"prune it (python -m trainers.feature_cache prune {self.root} --older-than-days 30), point "
                "FEATURE_CACHE.DIR to a larger disk, or use fewer views (FEATURE_CACHE.NUM_VIEWS k)")
        if nbytes + margin > free:
            raise FeatureCacheError(f"The feature cache {self.root} needs {nbytes / 2**30:.2f} GB more but the disk "
                                    f"has {free / 2**30:.2f} GB free: {hint}")
        if self.max_bytes:
            used = _dir_bytes(self.root)
            if used + nbytes > self.max_bytes:
                raise FeatureCacheError(
                    f"The feature cache {self.root} holds {used / 2**30:.2f} GB; {nbytes / 2**30:.2f} GB more would pass "
                    f"FEATURE_CACHE.MAX_GB ({self.max_bytes / 2**30:.2f}): {hint}, or raise FEATURE_CACHE.MAX_GB")

    def _write_meta(self, directory: str, key: Dict, describe: Optional[Dict]) -> None:
        meta = os.path.join(directory, "meta.json")
        if not os.path.isfile(meta):
            data = json.dumps({"key": key, "describe": describe or {}, "created": time.time()}, indent=1).encode()
            atomic_write(meta, lambda f: f.write(data))

    def get(self, key: Dict, build, views: int = 1, describe: Optional[Dict] = None, bytes_per_view: int = 0) -> Dict:
        """The first ``views`` views of the entry for ``key``, encoding only the views it lacks.

        ``build(start, stop, heartbeat) -> (features [stop - start, N, D], labels [N])`` encodes views
        ``start..stop-1``. Concurrent callers serialise on the entry's lock, so each view is encoded once.
        Returns ``{"features", "labels", "seconds", "encoded_views", "reused_views", "path"}``.
        """
        directory = self.entry_dir(key)
        loaded, covered = self._read(key, views)
        if loaded is None:
            os.makedirs(directory, exist_ok=True)
            with cluster_lock(directory + ".lock") as lock:
                loaded, covered = self._read(key, views)  # another process may have encoded them meanwhile
                if loaded is None:
                    start = time.time()
                    self._check_space((views - covered) * bytes_per_view)
                    features, labels = build(covered, views, lock.refresh)
                    features = features.to(torch.float16).contiguous()
                    chunk = {"key": key, "start": covered, "stop": views, "features": features, "labels": labels,
                             "checksums": view_checksums(features)}
                    self._write_meta(directory, key, describe)
                    path = os.path.join(directory, f"views-{covered:06d}-{views:06d}.pt")
                    atomic_write(path, lambda f: torch.save(chunk, f))
                    seconds = time.time() - start
                    logger.info("Cached %d view(s) x %d images -> %s (%.1fs)", views - covered, features.shape[1],
                                directory, seconds)
                    loaded, covered_after = self._read(key, views)
                    if loaded is None:
                        raise FeatureCacheError(f"The feature cache entry {directory} cannot be read back after "
                                                "writing it; check the disk")
                    return {"features": loaded[0], "labels": loaded[1], "seconds": seconds,
                            "encoded_views": views - covered, "reused_views": covered, "path": directory}
        try:
            os.utime(directory)  # last use, for pruning
        except OSError:
            pass
        return {"features": loaded[0], "labels": loaded[1], "seconds": 0.0, "encoded_views": 0,
                "reused_views": views, "path": directory}


# ---- feeding cached features to the training loop -----------------------------------------------------
class FeatureLoader:
    """Batches of cached features shaped like image batches: ``{"img": [B, D] float32, "label": [B]}``.

    Epoch ``e`` uses view ``e % V``: with ``V >= MAX_EPOCH`` (the default) every epoch sees its own view of
    every image, as the original's fresh augmentation. The shuffle is seeded by (seed, epoch), so a resumed
    run sees the same batches. Features stay fp16 on the host; one view is moved to the device per epoch
    (16-shot ImageNet at 200 views is 6.5 GB; one view is 33 MB).
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool,
                 drop_last: bool, device: torch.device, seed: int = 0):
        self.features = features
        self.labels = labels.to(device)
        self.device = device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self._view: Optional[Tuple[int, torch.Tensor]] = None

    @property
    def num_views(self) -> int:
        return self.features.shape[0]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.labels.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def view(self, v: int) -> torch.Tensor:
        if self._view is None or self._view[0] != v:
            self._view = (v, self.features[v].to(self.device, torch.float32))
        return self._view[1]

    def __iter__(self):
        n = self.labels.shape[0]
        feats = self.view(self.epoch % self.num_views)
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(n, generator=gen).to(self.labels.device)
        else:
            order = torch.arange(n, device=self.labels.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield {"img": feats[idx], "label": self.labels[idx], "index": idx}


class LazyFeatureLoader:
    """A ``FeatureLoader`` whose features are fetched (and encoded if needed) on first use.

    An evaluation-only run thus encodes only the split it evaluates.
    """

    def __init__(self, fetch: Callable[[], FeatureLoader]):
        self._fetch = fetch
        self._loader: Optional[FeatureLoader] = None

    @property
    def loader(self) -> FeatureLoader:
        if self._loader is None:
            self._loader = self._fetch()
        return self._loader

    @property
    def materialized(self) -> bool:
        return self._loader is not None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loader, name)


# ---- disk use and pruning ----------------------------------------------------------------------------
def list_entries(root: str) -> List[Dict]:
    """Every entry under ``root``: folder, views held, bytes, last use, description."""
    entries = []
    if not os.path.isdir(root):
        return entries
    for name in sorted(os.listdir(root)):
        directory = os.path.join(root, name)
        if not os.path.isdir(directory):
            continue
        meta = {}
        try:
            with open(os.path.join(directory, "meta.json")) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            pass
        chunks = FeatureStore._chunks(directory)
        _, views = FeatureStore._plan(chunks, 1 << 30)
        entries.append({"path": directory, "views": views, "bytes": _dir_bytes(directory),
                        "last_used": os.path.getmtime(directory), "key": meta.get("key", {}),
                        "describe": meta.get("describe", {})})
    return entries


def prune(root: str, older_than_days: Optional[float] = None, keep_gb: Optional[float] = None,
          dry_run: bool = False) -> List[Dict]:
    """Remove entries unused for ``older_than_days``, then the least recently used until ``keep_gb`` remain.

    An entry in use by a running job keeps working (its files stay open until it ends); a later run
    encodes it again. Returns the removed entries.
    """
    entries = sorted(list_entries(root), key=lambda e: e["last_used"])
    now = time.time()
    doomed = []
    if older_than_days is not None:
        doomed = [e for e in entries if now - e["last_used"] > older_than_days * 86400]
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
            try:
                os.remove(e["path"] + ".lock")
            except OSError:
                pass
    return doomed


def _describe(e: Dict) -> str:
    d = e["describe"]
    what = " ".join(f"{k}={d[k]}" for k in ("dataset", "split", "shots", "seed", "backbone") if k in d)
    return f"{os.path.basename(e['path'])}  {e['views']:>4} views  {e['bytes'] / 2**20:9.1f} MB  {what}"


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m trainers.feature_cache", description="Feature cache: disk use, pruning")
    sub = p.add_subparsers(dest="command", required=True)
    du = sub.add_parser("du", help="list entries and their disk use")
    du.add_argument("root")
    pr = sub.add_parser("prune", help="remove unused entries")
    pr.add_argument("root")
    pr.add_argument("--older-than-days", type=float, default=None, help="remove entries unused for this long")
    pr.add_argument("--keep-gb", type=float, default=None, help="then remove the least recently used beyond this size")
    pr.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not os.path.isdir(args.root):
        raise SystemExit(f"error: {args.root} is not a feature cache folder")
    if args.command == "du":
        entries = list_entries(args.root)
        for e in entries:
            logger.info(_describe(e))
        logger.info("%d entries, %.2f GB in %s", len(entries), sum(e["bytes"] for e in entries) / 2**30, args.root)
        return
    if args.older_than_days is None and args.keep_gb is None:
        raise SystemExit("error: prune needs --older-than-days DAYS and/or --keep-gb GB")
    removed = prune(args.root, args.older_than_days, args.keep_gb, args.dry_run)
    for e in removed:
        logger.info("%s %s", "would remove" if args.dry_run else "removed", _describe(e))
    logger.info("%s %d entries, %.2f GB", "Would free" if args.dry_run else "Freed", len(removed),
                sum(e["bytes"] for e in removed) / 2**30)


if __name__ == "__main__":
    main()
