"""Cached features fed to the training loop and evaluation in the shape of image batches."""
from typing import Callable, Optional, Tuple

import torch


class FeatureLoader:
    """Batches of cached features shaped like image batches: ``{"img": [B, D] float32, "label": [B]}``; epoch
    ``e`` uses view ``e % V``. The shuffle is seeded by (seed, epoch), so a resumed run sees the same batches.
    Features stay fp16 on the host and one view moves to the device per epoch (16-shot ImageNet at 200 views
    is 6.5 GB; one view is 33 MB)."""

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
    """A ``FeatureLoader`` fetched (and encoded if needed) on first use: an evaluation-only run encodes only
    the split it evaluates."""

    def __init__(self, fetch: Callable[[], FeatureLoader]):
        self._fetch = fetch
        self._loader: Optional[FeatureLoader] = None

    @property
    def loader(self) -> FeatureLoader:
        if self._loader is None:
            self._loader = self._fetch()
        return self._loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loader, name)
