"""Image lists and the sampling rules applied to them, shared by every dataset: listing and reading helpers,
the raw-annotation split builders, class subsampling, the held-out val rule and a fast existence check. The
sampling rules use ``random``'s global state where Dassl's protocol does.
"""
import logging
import math
import os
import random
from collections import Counter
from typing import Dict, Iterable, List, Sequence, Tuple

from engine import Datum

logger = logging.getLogger(__name__)

Split = Tuple[List[Datum], List[Datum], List[Datum]]
LIKE_TEST_SEED_OFFSET = 104_729  # the test-sized held-out set: a seed stream apart from the min(K, 4) one


def group_by_label(items: Iterable) -> Dict[int, list]:
    """Items per label, labels in order of first appearance."""
    groups: Dict[int, list] = {}
    for item in items:
        groups.setdefault(item.label, []).append(item)
    return groups


def split_trainval(trainval: Sequence[Datum], p_val: float = 0.2) -> Tuple[List[Datum], List[Datum]]:
    """Per label (first-appearance order) shuffle with ``random`` and move ``round(n * p_val)`` items to val."""
    train, val = [], []
    for items in group_by_label(trainval).values():
        n_val = round(len(items) * p_val)
        random.shuffle(items)
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def split_by_ratio(groups: Iterable[Sequence[Datum]], p_train: float = 0.5, p_val: float = 0.2) -> Split:
    """Per class (``groups`` yields each class's items): shuffle with ``random``, then ``round(n * p_train)``
    train, ``round(n * p_val)`` val, the rest test."""
    train, val, test = [], [], []
    for items in groups:
        items = list(items)
        random.shuffle(items)
        n_train, n_val = round(len(items) * p_train), round(len(items) * p_val)
        train += items[:n_train]
        val += items[n_train:n_train + n_val]
        test += items[n_train + n_val:]
    return train, val, test


def list_dirs(path: str) -> List[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def folder_items(class_dir: str, label: int, classname: str) -> List[Datum]:
    """The non-hidden files in ``class_dir``, sorted (the same order on every file system)."""
    names = sorted(e.name for e in os.scandir(class_dir) if e.is_file() and not e.name.startswith("."))
    return [Datum(impath=os.path.join(class_dir, name), label=label, classname=classname) for name in names]


def read_lines(fpath: str) -> List[str]:
    with open(fpath) as f:
        return [line.strip() for line in f if line.strip()]


def subsample_classes(*splits: Sequence[Datum], subsample: str = "all") -> List[List[Datum]]:
    """Keep the first (base) or last (new) half of the first list's sorted labels (split at ``ceil(n / 2)``)
    in every list, relabelled from 0."""
    subsample = (subsample or "all").lower()
    if subsample not in ("all", "base", "new"):
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES must be all, base or new, not {subsample!r}")
    if subsample == "all":
        return [list(s) for s in splits]
    labels = sorted({item.label for item in splits[0]})
    half = math.ceil(len(labels) / 2)
    selected = labels[:half] if subsample == "base" else labels[half:]
    relabel = {old: new for new, old in enumerate(selected)}
    logger.info("Subsampling %s classes: %d of %d", subsample, len(selected), len(labels))
    return [[Datum(impath=d.impath, label=relabel[d.label], domain=d.domain, classname=d.classname)
             for d in split if d.label in relabel] for split in splits]


def find_missing(paths: Iterable[str]) -> List[str]:
    """Paths that do not exist. A folder holding many of them is listed once (fast for a whole split), one
    holding a few is checked path by path (16 ImageNet shots do not list the class's 1,300 images)."""
    by_folder: Dict[str, List[str]] = {}
    for path in paths:
        by_folder.setdefault(os.path.dirname(path), []).append(path)
    missing = []
    for folder, group in by_folder.items():
        if len(group) < 32:
            missing.extend(p for p in group if not os.path.exists(p))
            continue
        try:
            listing = set(os.listdir(folder))
        except OSError:
            listing = set()
        missing.extend(p for p in group if os.path.basename(p) not in listing and not os.path.exists(p))
    return missing


def fewshot_val_per_class(num_shots: int) -> int:
    """Val images per class of a ``num_shots``-shot run (CoOp's rule): ``min(K, 4)``, and 4 when K < 1."""
    return min(num_shots, 4) if num_shots >= 1 else 4


def draw_heldout_val(full_train: Sequence[Datum], fewshot_train: Sequence[Datum], test: Sequence[Datum],
                     num_shots: int, seed, like_test: bool = False) -> List[Datum]:
    """A selection set of a dataset whose val is its test set (ImageNet), from its train split outside the
    few-shot set and test: per sorted label ``min(K, 4)`` images (4 when K < 1; CoOp's few-shot val size),
    ``random.Random(max(seed, 0))``; or, ``like_test``, as many as test has (what an original that selected
    on test would have used), from a seed stream of its own. Every method of a run selects on the same images.
    """
    excluded = {d.impath for d in fewshot_train} | {d.impath for d in test}
    per_label = group_by_label(d for d in full_train if d.impath not in excluded)
    if like_test:
        counts = Counter(d.label for d in test)
    else:
        counts = dict.fromkeys(per_label, fewshot_val_per_class(num_shots))
    rng = random.Random(max(int(seed), 0) + (LIKE_TEST_SEED_OFFSET if like_test else 0))
    held_out = []
    for label in sorted({d.label for d in fewshot_train}):
        pool = per_label.get(label, [])
        held_out.extend(rng.sample(pool, min(counts.get(label, 0), len(pool))))
    return held_out
