"""The benchmark datasets; ``import datasets`` registers all of them in ``DATASET_REGISTRY``.

What a dataset object provides, the layouts and the rules: DATASETS.md ("For code"). ``select_validation``
is the only door to the set a method may select on (never test).
"""
from typing import Tuple

from engine import DATASET_REGISTRY

from . import imagenet, readers  # noqa: F401  (importing registers the datasets)
from .base import BenchmarkDataset
from .errors import DatasetFileError, DatasetNotFoundError, MissingImagesError, ValidationSplitError
from .files import load_datum_pickle
from .imagenet import IMAGENET_TEMPLATES_SELECT
from .splits import draw_heldout_val
from .validation import (
    DEFAULT_TRACK,
    PAPER_SOURCES,
    TRACKS,
    check_track,
    satisfied_tracks,
    select_validation,
)

BENCHMARK_DATASETS = (
    "ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers", "Food101", "FGVCAircraft",
    "SUN397", "DescribableTextures", "EuroSAT", "UCF101", "ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR",
)

__all__ = [
    "BENCHMARK_DATASETS", "BenchmarkDataset", "DatasetFileError", "DatasetNotFoundError", "IMAGENET_TEMPLATES_SELECT",
    "MissingImagesError", "ValidationSplitError", "add_dataset_config", "dataset_templates", "draw_heldout_val",
    "load_datum_pickle", "select_validation", "PAPER_SOURCES", "TRACKS", "DEFAULT_TRACK",
    "check_track", "satisfied_tracks",
]


def add_dataset_config(cfg) -> None:
    """Add the dataset keys the benchmark reads beyond Dassl's defaults (idempotent)."""
    if "SUBSAMPLE_CLASSES" not in cfg.DATASET:
        cfg.DATASET.SUBSAMPLE_CLASSES = "all"  # all, base or new
    if "TRACK" not in cfg.DATASET:
        # Selection track (datasets/validation.py): paper (each original's own selection data), fewshot_val or valfree.
        cfg.DATASET.TRACK = DEFAULT_TRACK


def dataset_templates(dataset_name: str) -> Tuple[str, ...]:
    """The dataset's own prompt template, as a one-element tuple, from the registry (no dataset is read).
    ImageNet runs that average templates combine it with ``IMAGENET_TEMPLATES_SELECT``."""
    template = getattr(DATASET_REGISTRY.get(dataset_name), "template", None)
    if not isinstance(template, str):
        raise KeyError(f"Dataset {dataset_name!r} declares no prompt template")
    return (template,)
