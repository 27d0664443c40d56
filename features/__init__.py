"""Cache of frozen CLIP image features: the image encoder runs once per distinct image view.

``features`` imports ``engine`` only (never ``trainers``); trainers use it through ``FeatureSource``.
Modules and format: docs/feature-cache.md.
"""
from features.extraction import default_batch_size, default_workers, extract_features, is_deterministic
from features.loaders import FeatureLoader, LazyFeatureLoader
from features.source import FeatureSource
from features.store import (
           CACHE_FORMAT_VERSION,
           FeatureCacheError,
           FeatureStore,
           cache_key,
           list_entries,
           prune,
)

__all__ = ["CACHE_FORMAT_VERSION", "FeatureCacheError", "FeatureLoader", "FeatureSource", "FeatureStore",
           "LazyFeatureLoader", "cache_key", "default_batch_size", "default_workers", "extract_features",
           "is_deterministic", "list_entries", "prune"]
