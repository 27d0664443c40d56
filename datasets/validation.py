"""The set a method may select hyper-parameters or epochs on: never the test set, by construction.

The only door to validation data: it knows the track (``DATASET.TRACK``: ``paper``, ``fewshot_val``, i.e.
CoOp's few-shot val, or ``valfree``, where asking for items is an error), refuses any set sharing an image
with test, and returns what a run selected on for ``metrics.json``. ImageNet's held-out sets are drawn by
``base.BenchmarkDataset.fewshot_sets``. Tracks, held-out sets and the record: docs/fidelity.md.
"""
import hashlib
import logging
import os
import random
from collections import Counter
from typing import List, Tuple

from .errors import ValidationSplitError
from .splits import group_by_label

logger = logging.getLogger(__name__)

TRACKS = ("paper", "fewshot_val", "valfree")
DEFAULT_TRACK = "paper"

# What an original selected on (a method passes one of these; the ``paper`` track honours it):
#   fewshot_val  CoOp's few-shot val, min(K, 4) per class (CoOp's lpclip); ImageNet: min(K, 4) of test per class
#   dassl_val    Dassl's ``dataset.val`` (TEST.FINAL_MODEL best_val): the few-shot val; ImageNet: the whole test set
#   val_split    the dataset's whole val split (Tip-Adapter's search_hp); ImageNet: the whole test set
#   kshot_val    K per class of the val split (LP++); ImageNet: K per class of extra train images
PAPER_SOURCES = ("fewshot_val", "dassl_val", "val_split", "kshot_val")
KSHOT_SEED_OFFSET = 7_919  # K-per-class draws from the val split: a seed stream of their own


def check_track(track: str) -> str:
    """The track name, or ``ValueError`` naming the valid ones."""
    if track not in TRACKS:
        raise ValueError(f"DATASET.TRACK must be one of {', '.join(TRACKS)}, not {track!r}")
    return track


def satisfied_tracks(track: str, read_validation: bool, selects_on_val: bool) -> List[str]:
    """A run that read no validation data of a method that never selects satisfies every track (one run serves
    every table); any other only its own. Runs written before tracks were recorded are judged the same way."""
    return [track] if (read_validation or selects_on_val) else list(TRACKS)


def _per_class(items: List, k: int, seed: int) -> List:
    """``k`` items per label (all when fewer), drawn per sorted label with ``random.Random(seed)``."""
    by_label = group_by_label(items)
    rng = random.Random(seed)
    return [d for label in sorted(by_label) for d in rng.sample(by_label[label], min(k, len(by_label[label])))]


def _first_per_class(items: List, k: int) -> List:
    seen: Counter = Counter()
    out = []
    for d in items:
        if seen[d.label] < k:
            seen[d.label] += 1
            out.append(d)
    return out


def _resolve(dataset, name: str, track: str, paper: str, num_shots: int, seed: int) -> Tuple[List, str, str]:
    """(items, source key, description) before the test-overlap check."""
    if check_track(track) == "valfree":
        raise ValidationSplitError(f"{name}: the valfree track reads no validation data; the method must use its "
                                   "fixed setting (declare selects_on_val=True and switch on DATASET.TRACK)")
    if paper not in PAPER_SOURCES:
        raise ValueError(f"unknown selection source {paper!r}; one of {', '.join(PAPER_SOURCES)}")
    if track == "fewshot_val":
        paper = "fewshot_val"
    k = num_shots if num_shots >= 1 else 4  # kshot_val's K
    if not getattr(dataset, "val_is_test", False):
        if paper in ("fewshot_val", "dassl_val"):
            return list(dataset.val or []), "fewshot_val", "few-shot val (min(K, 4) per class)"
        whole = getattr(dataset, "val_split", None)
        whole = list(dataset.val or []) if whole is None else list(whole)
        if paper == "val_split":
            return whole, "val_split", "the whole val split"
        return (_per_class(whole, k, max(seed, 0) + KSHOT_SEED_OFFSET), "kshot_val",
                f"{k} per class of the val split")
    if paper == "fewshot_val":
        held = getattr(dataset, "heldout_val", None)
        return held, "heldout_val", "held-out train images, min(K, 4) per class (the original: test images)"
    held = getattr(dataset, "heldout_paper", None)
    if held is not None and paper == "kshot_val":
        return _first_per_class(held, k), "heldout_kshot", f"held-out train images, {k} per class"
    return held, "heldout_paper", "held-out train images, as many per class as test (the original: the test set)"


def select_validation(dataset, name: str = "", track: str = DEFAULT_TRACK, paper: str = "fewshot_val",
                      num_shots: int = 0, seed: int = 1) -> Tuple[List, dict]:
    """The items a method may select on and their ``metrics.json`` record; ``ValidationSplitError`` (one line)
    when no clean set exists (``valfree``, a test-only dataset, a full-data ImageNet run, overlap with test)."""
    name = name or type(dataset).__name__
    items, source, what = _resolve(dataset, name, track, paper, int(num_shots), int(seed))
    if items is None:
        raise ValidationSplitError(f"{name}: its val split is its test set, and it provides no held-out val "
                                   "(test-only dataset); hyper-parameters are never chosen on test")
    if not items and source.startswith("heldout"):
        raise ValidationSplitError(f"{name}: its val split is its test set and every train image is used for "
                                   "training; no held-out val is left to choose hyper-parameters on")
    if not items:
        raise ValidationSplitError(f"{name}: its split has no validation images ({what}); hyper-parameters are "
                                   "never chosen on test")
    test_paths = {d.impath for d in dataset.test}
    if any(d.impath in test_paths for d in items):
        raise ValidationSplitError(f"{name}: its validation set ({what}) shares images with its test set (a "
                                   "test-only dataset?) and it provides no held-out val; hyper-parameters are "
                                   "never chosen on test")
    root = getattr(dataset, "dataset_dir", "") or ""
    rels = sorted(os.path.relpath(d.impath, root) if root else d.impath for d in items)
    record = {"track": track, "source": source, "data": what, "images": len(items),
              "per_class": max(Counter(d.label for d in items).values()),
              "images_sha256": hashlib.sha256("\n".join(rels).encode()).hexdigest()}
    if source.startswith("heldout"):
        record["listed_in"] = getattr(dataset, "heldout_file", None)
    logger.info("%s: selecting on %s: %d images (%d per class at most)", name, what, len(items), record["per_class"])
    return list(items), record

