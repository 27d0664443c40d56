"""Cache of frozen CLIP image features: the image encoder runs once per distinct image view.

A cache entry is one file holding ``features [V, N, D]`` (fp16), ``labels [N]`` and the key it was
built for. The key covers everything that changes the features: the weights' content hash and
precision, the ordered list of (image path, label), the transform's full description, the number
of views and, for augmented views, the seed. View ``v`` of image ``p`` is drawn with the torch RNG
seeded by (seed, p, v), so an entry is a pure function of its key, whatever the batch order or the
number of loader workers. Files are written atomically (temporary file + rename) under a file
lock; a truncated or corrupted file fails its checksum and is rebuilt.
"""
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from typing import Dict, Iterator, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from engine import read_image

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1

try:
    import fcntl
except ImportError:  # Windows: no lock; atomic renames still keep files whole
    fcntl = None


def view_seed(seed: int, impath: str, view: int) -> int:
    """Seed of one view; ``impath`` is relative to the datasets root, so moving the root keeps the views."""
    digest = hashlib.sha256(f"{seed}|{impath}|{view}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class SeededViews(Dataset):
    """Item ``i`` is image ``i`` decoded once and transformed ``V`` times, view ``v`` under its own seeded RNG.

    Decoding once per image (not once per view) matters on a GPU, where JPEG decoding, not the encoder,
    is the bottleneck.
    """

    def __init__(self, items: Sequence, transform, views: int, seed: int, root: str = ""):
        self.items = items
        self.transform = transform
        self.views = views
        self.seed = seed
        self.root = root

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int):
        item = self.items[idx]
        img = read_image(item.impath)
        name = os.path.relpath(item.impath, self.root) if self.root else item.impath
        out = []
        with torch.random.fork_rng(devices=[]):
            for view in range(self.views):
                torch.manual_seed(view_seed(self.seed, name, view))
                out.append(self.transform(img))
        return torch.stack(out), idx


def items_digest(items: Sequence) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(f"{item.impath}\t{item.label}\n".encode())
    return h.hexdigest()


def tensor_checksum(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


@torch.no_grad()
def extract_features(backbone, items: Sequence, transform, views: int, seed: int, batch_size: int,
                     num_workers: int, desc: str, root: str = "") -> torch.Tensor:
    """Run the image encoder over ``views`` seeded views of every item; returns ``[V, N, D]`` fp16 on CPU.

    ``root``: the datasets root; view seeds use image paths relative to it.
    """
    images_per_batch = max(1, batch_size // views)  # a batch holds about ``batch_size`` views
    loader = DataLoader(SeededViews(items, transform, views, seed, root), batch_size=images_per_batch,
                        shuffle=False, num_workers=num_workers, pin_memory=backbone.device.type == "cuda")
    out = torch.empty(views, len(items), backbone.embed_dim, dtype=torch.float16)
    for images, idx in tqdm(loader, desc=desc, unit="batch", leave=False):
        b = images.shape[0]
        feats = backbone.encode_image(images.flatten(0, 1).to(backbone.device, non_blocking=True))
        out[:, idx] = feats.view(b, views, -1).transpose(0, 1).to("cpu", torch.float16)
    return out


class FeatureStore:
    """Feature-cache entries under ``root``, one file per key."""

    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def path(self, key: Dict) -> str:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return os.path.join(self.root, f"{key['split']}-{digest}.pt")

    def _load_valid(self, path: str, key: Dict) -> Optional[Dict]:
        if not os.path.isfile(path):
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            ok = (entry.get("key") == key and entry["features"].dim() == 3
                  and entry["features"].shape[1] == entry["labels"].shape[0]
                  and tensor_checksum(entry["features"]) == entry.get("checksum"))
        except Exception as err:  # truncated / corrupted file
            logger.warning("Feature cache file %s is unreadable (%s); rebuilding it", path, err)
            return None
        if not ok:
            logger.warning("Feature cache file %s does not match its key or checksum; rebuilding it", path)
            return None
        return entry

    @contextlib.contextmanager
    def _lock(self, path: str) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with open(path + ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _save(self, path: str, entry: Dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix="tmp-", suffix=".partial")
        os.close(fd)
        try:
            torch.save(entry, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def get(self, key: Dict, build) -> Dict:
        """Return the entry for ``key``, building it with ``build() -> (features, labels)`` if needed.

        Concurrent callers with the same key wait on a file lock, so the encoder runs once and both
        get the same file.
        """
        path = self.path(key)
        entry = self._load_valid(path, key)
        if entry is not None:
            entry["seconds"] = 0.0
            return entry
        with self._lock(path):
            entry = self._load_valid(path, key)  # another process may have built it meanwhile
            if entry is not None:
                entry["seconds"] = 0.0
                return entry
            start = time.time()
            features, labels = build()
            entry = {"key": key, "features": features, "labels": labels, "checksum": tensor_checksum(features)}
            self._save(path, entry)
            entry["seconds"] = time.time() - start
            logger.info("Cached %s features %s in %.1fs -> %s", key["split"], tuple(features.shape),
                        entry["seconds"], path)
            return entry


def cache_key(backbone, split: str, items: Sequence, transform, views: int, seed: Optional[int]) -> Dict:
    return {
        "version": CACHE_FORMAT_VERSION,
        "split": split,
        "backbone": backbone.name,
        "weights": backbone.fingerprint(),
        "precision": backbone.precision,
        "items": items_digest(items),
        "num_items": len(items),
        "transform": repr(transform),
        "views": views,
        "seed": seed,
    }


class FeatureLoader:
    """Batches of cached features shaped like image batches: ``{"img": [B, D] float32, "label": [B]}``.

    Training uses view ``epoch % V`` in epoch ``epoch`` (every view is seen once per V epochs, in
    order) and a shuffle seeded by (seed, epoch), so a resumed run sees the same batches.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool,
                 drop_last: bool, device: torch.device, seed: int = 0):
        self.features = features.to(device, torch.float32)  # converted once, not every batch
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    @property
    def num_views(self) -> int:
        return self.features.shape[0]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.labels.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = self.labels.shape[0]
        feats = self.features[self.epoch % self.num_views]
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(n, generator=gen).to(self.labels.device)
        else:
            order = torch.arange(n, device=self.labels.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield {"img": feats[idx], "label": self.labels[idx], "index": idx}
