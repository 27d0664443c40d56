"""``FeatureSource``: the feature cache as one run uses it.

It owns the store (``FEATURE_CACHE.DIR``), the run's memo (a list read twice, e.g. ImageNet's identical
val and test, is read once) and the run's ``metrics.json`` record (``info``); what to read is the method's
to declare (docs/feature-cache.md).
"""
import hashlib
import logging
import os
from typing import Optional, Sequence

import torch

from engine import build_transform
from features.extraction import encode_batches, is_deterministic
from features.loaders import FeatureLoader, LazyFeatureLoader
from features.store import FeatureCacheError, FeatureStore, cache_key

logger = logging.getLogger(__name__)


def _same_items(a: Sequence, b: Sequence) -> bool:
    return len(a) == len(b) and all(x.impath == y.impath for x, y in zip(a, b))


class FeatureSource:
    """Cached features of one run's dataset under one backbone. ``info`` is ``metrics.json``'s
    ``feature_cache_info`` (fields: docs/feature-cache.md); ``timings["extract_s"]`` adds up extraction time."""

    def __init__(self, cfg, backbone, dataset, timings: dict):
        self.cfg = cfg
        self.backbone = backbone
        self.dataset = dataset
        self.timings = timings
        self.info = {"enabled": bool(cfg.FEATURE_CACHE.ENABLED), "splits": {}, "encoded_views": 0, "reused_views": 0}
        self.memo = {}
        # A test-only dataset (the ImageNet variants) lists its test images as its train split.
        self.test_only = _same_items(dataset.train_x, dataset.test)
        fc = cfg.FEATURE_CACHE
        self.store = FeatureStore(fc.DIR or os.path.join(cfg.OUTPUT_DIR, "feature_cache"),
                                  max_bytes=int(float(fc.get("MAX_GB", 0.0)) * 2**30))

    def get(self, split: str, items: Sequence, transform, views: int, seed: Optional[int]) -> dict:
        """``views`` views of ``items`` under ``transform`` (``seed`` None: deterministic, one view), encoding
        only those no earlier run stored. A test-only dataset's augmented views are never encoded: zeros stand
        in (a method evaluated there loads its trained state; ``train_loader`` refuses training there)."""
        cfg, info = self.cfg, self.info
        labels = torch.tensor([item.label for item in items], dtype=torch.long)
        if seed is not None and self.test_only and _same_items(items, self.dataset.test):
            logger.info("%s is test-only: its %s images get no augmented views (a trained state comes from "
                        "--model-dir)", cfg.DATASET.NAME, split)
            info["splits"][split] = {"entry": None, "views": 0, "encoded_views": 0, "reused_views": 0}
            return {"features": torch.zeros(1, len(items), self.backbone.embed_dim, dtype=torch.float16),
                    "labels": labels, "seconds": 0.0, "encoded_views": 0, "reused_views": 0, "path": None}
        key = cache_key(self.backbone, items, transform, seed)
        if key["kind"] == "plain":
            views = 1  # a deterministic transform gives one view, whatever was asked
        memo_key = (self.store.entry_dir(key), views)
        if memo_key in self.memo:  # e.g. ImageNet: val and test are the same list
            entry = dict(self.memo[memo_key], seconds=0.0, encoded_views=0, reused_views=views)
        else:
            fc = cfg.FEATURE_CACHE

            def encode(start: int, stop: int, first: int):
                return encode_batches(self.backbone, items, transform, start, stop, seed or 0, int(fc.BATCH_SIZE),
                                      int(fc.NUM_WORKERS), root=cfg.DATASET.ROOT, first=first)

            describe = {"dataset": cfg.DATASET.NAME, "split": split, "shots": int(cfg.DATASET.NUM_SHOTS),
                        "seed": seed, "backbone": cfg.MODEL.BACKBONE.NAME, "input_size": list(cfg.INPUT.SIZE),
                        "transform": hashlib.sha256(repr(transform).encode()).hexdigest()[:12]}
            entry = self.store.get(key, encode, views, labels, describe=describe,
                                   bytes_per_view=len(items) * self.backbone.embed_dim * 2,
                                   desc=f"{cfg.DATASET.NAME} {split} images")
            self.memo[memo_key] = entry
        self.timings["extract_s"] = self.timings.get("extract_s", 0.0) + entry["seconds"]
        info["splits"][split] = {"entry": os.path.basename(entry["path"]), "views": views,
                                 "encoded_views": entry["encoded_views"], "reused_views": entry["reused_views"]}
        info["encoded_views"] += entry["encoded_views"] * len(items)
        info["reused_views"] += entry["reused_views"] * len(items)
        return entry

    def eval_loader(self, split: str, items: Sequence, batch_size: int, device: torch.device) -> LazyFeatureLoader:
        """A loader over the plain (test-transform) features of ``items``, read (or encoded) on first use."""
        def fetch() -> FeatureLoader:
            entry = self.get(split, items, build_transform(self.cfg, is_train=False), 1, None)
            return FeatureLoader(entry["features"], entry["labels"], batch_size, False, False, device)
        return LazyFeatureLoader(fetch)

    def train_views(self, own_views: Optional[int], epochs: int) -> int:
        """Views per training image: ``FEATURE_CACHE.NUM_VIEWS``; when 0, the method's own pool (``own_views``)
        or one per epoch (the paper's protocol)."""
        k = int(self.cfg.FEATURE_CACHE.NUM_VIEWS)
        if k < 0:
            raise FeatureCacheError(f"FEATURE_CACHE.NUM_VIEWS must be 0 (one view per epoch) or a positive number "
                                    f"of views, not {k}")
        return k or own_views or max(1, int(epochs))

    def record_protocol(self, protocol: str, train_views: Optional[int] = None, paper: bool = True, **extra) -> None:
        self.info.update(train_views=train_views, paper_protocol=paper, protocol=protocol, **extra)

    def train_loader(self, augmented: bool, own_views: Optional[int], training_free: bool, epochs: int,
                     batch_size: int, device: torch.device) -> Optional[FeatureLoader]:
        """The training loader over cached views (None for a training-free method, which reads its own), and
        the record of how its views were drawn: seeded augmented views (``augmented``, else one plain view),
        the method's published pool (``own_views``; None: one per epoch) or a fast mode (logged, recorded)."""
        cfg = self.cfg
        if self.test_only:
            raise FeatureCacheError(f"{cfg.DATASET.NAME} is a test-only dataset: train on ImageNet and evaluate here "
                                    "with --eval-only --model-dir RUN_DIR")
        if training_free:  # fitted in the method's ``fit()`` from its own features: no training loader
            self.record_protocol("training-free")
            return None
        seed = max(cfg.SEED, 0)
        epochs = max(1, int(epochs))
        tfm = build_transform(cfg, is_train=augmented)
        items = self.dataset.train_x
        views, views_seed = (self.train_views(own_views, epochs), seed) if augmented else (1, None)
        train = self.get("train", items, tfm, views, views_seed)
        held = int(train["features"].shape[0])
        paper = held >= (min(epochs, own_views) if own_views else epochs) or not augmented or is_deterministic(tfm)
        published = f"{own_views} views per image, view e % {own_views} in epoch e (the method's own)"
        self.record_protocol((published if own_views else "one view per epoch (paper)") if paper else
                             f"fast: {held} cached views for {epochs} epochs (FEATURE_CACHE.NUM_VIEWS {held})",
                             held, paper, num_views_option=int(cfg.FEATURE_CACHE.NUM_VIEWS))
        if not paper:
            logger.warning("Fast mode: %d cached views per image for %d epochs (the paper draws one per epoch); "
                           "this run is marked as such in metrics.json", held, epochs)
        return FeatureLoader(train["features"], train["labels"], batch_size, shuffle=True,
                             drop_last=len(items) >= batch_size, device=device, seed=seed)
