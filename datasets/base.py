"""The shared mechanics of the benchmark datasets; each dataset module only declares its layout.

A dataset is read in four steps, all here:

1. the full train/val/test lists: from ``split_zhou_<Name>.json`` when present, else built from the
   dataset's raw annotations (``read_raw``, which the dataset module implements) and written as that
   split file, so the next run reads the same split;
2. a check that every listed image exists (a stale or foreign split file fails here, before any
   training, naming the first missing files and how many there are);
3. few-shot sampling (``DATASET.NUM_SHOTS`` >= 1), cached in ``split_fewshot/shot_K-seed_S.pkl``;
4. class subsampling (``DATASET.SUBSAMPLE_CLASSES``: all, base or new).

Compatibility with trees prepared by CoOp/Dassl: their split files and few-shot pickles are read
unchanged and give the same samples. Their pickles hold Dassl's ``Datum`` class
(``dassl.data.datasets.base_dataset.Datum``); a restricted unpickler maps it to the engine's ``Datum``,
so Dassl need not be installed. The image paths in those pickles are absolute; when the datasets root
has moved since, paths are re-rooted onto the current dataset folder. Files we write (split JSON,
pickles) go through a temporary file and a rename, so two runs writing the same file at once are safe.

Every dataset object has ``label_map_to_train_classes``: ``None`` when its labels are the labels a
model trained on it (or on ImageNet, for the ImageNet variants) predicts, else a list giving, for each
of its labels, the training label (ImageNet-A/-R: their 200 labels -> ImageNet's 1000).
"""
import logging
import math
import os
import pickle
import random
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from engine import ENGINE_NAME, DatasetBase, Datum, atomic_write_bytes

logger = logging.getLogger(__name__)

Split = Tuple[List[Datum], List[Datum], List[Datum]]

DOCS = "DATASETS.md"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder, annotation file or image is missing; the message says what and where to look."""


class MissingImagesError(DatasetNotFoundError):
    """A split or few-shot file lists images that are not on disk."""


# ------------------------------------------------------------------------------------------------------------
# Files: atomic writes and a pickle reader that accepts Dassl's Datum
# ------------------------------------------------------------------------------------------------------------
def write_json_atomic(obj, fpath: str) -> None:
    """Write JSON the way Dassl formats split files (indent 4), through a temporary file and a rename."""
    import json

    atomic_write_bytes(fpath, json.dumps(obj, indent=4, separators=(",", ": ")).encode())


def write_pickle_atomic(obj, fpath: str) -> None:
    atomic_write_bytes(fpath, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


# Modules whose ``Datum`` we accept: Dassl's (CoOp/Dassl pickles), our built-in engine's, and whichever
# class the engine in use exports (the same as one of those two).
DATUM_MODULES = frozenset({"dassl.data.datasets.base_dataset", "engine.builtin.dataset", Datum.__module__})
_SAFE_GLOBALS = frozenset({
    ("collections", "OrderedDict"), ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
    ("builtins", "set"), ("builtins", "int"), ("builtins", "str"),
    ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
})


class _DatumUnpickler(pickle.Unpickler):
    """Restore few-shot/preprocessed pickles: ``Datum`` from any known module, plain containers, nothing else."""

    def __init__(self, file, fpath: str):
        super().__init__(file)
        self._fpath = fpath

    def find_class(self, module: str, name: str):
        if name == "Datum" and module in DATUM_MODULES:
            return Datum
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"{self._fpath} holds an unexpected object {module}.{name}; a few-shot or preprocessed file "
            f"should hold only Datum lists. Delete it to have it rebuilt.")


def load_datum_pickle(fpath: str) -> dict:
    """Load a ``{"train": [Datum, ...], ...}`` pickle written by us, CoOp or Dassl."""
    with open(fpath, "rb") as f:
        return _DatumUnpickler(f, fpath).load()


# ------------------------------------------------------------------------------------------------------------
# Sampling helpers shared by the raw-annotation readers (used only when a split file is absent)
# ------------------------------------------------------------------------------------------------------------
def split_trainval(trainval: Sequence[Datum], p_val: float = 0.2) -> Tuple[List[Datum], List[Datum]]:
    """Per label (first-appearance order) shuffle with ``random`` and move ``round(n * p_val)`` items to val."""
    by_label: Dict[int, List[int]] = {}
    for idx, item in enumerate(trainval):
        by_label.setdefault(item.label, []).append(idx)
    train, val = [], []
    for idxs in by_label.values():
        n_val = round(len(idxs) * p_val)
        random.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def split_by_ratio(groups: Iterable[Tuple[int, str, List[str]]], p_train: float = 0.5,
                   p_val: float = 0.2) -> Split:
    """Per class: shuffle its image paths with ``random``, then ``round(n * p_train)`` train,
    ``round(n * p_val)`` val, the rest test. ``groups`` yields (label, classname, image paths)."""
    train, val, test = [], [], []
    for label, classname, impaths in groups:
        impaths = list(impaths)
        random.shuffle(impaths)
        n_train, n_val = round(len(impaths) * p_train), round(len(impaths) * p_val)
        for part, out in ((impaths[:n_train], train), (impaths[n_train:n_train + n_val], val),
                          (impaths[n_train + n_val:], test)):
            out.extend(Datum(impath=p, label=label, classname=classname) for p in part)
    return train, val, test


def list_dirs(path: str) -> List[str]:
    """Sorted names of the non-hidden sub-folders of ``path``."""
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def list_files(path: str) -> List[str]:
    """Sorted names of the non-hidden files in ``path`` (sorted: the same order on every file system)."""
    return sorted(e.name for e in os.scandir(path) if e.is_file() and not e.name.startswith("."))


def subsample_classes(*splits: Sequence[Datum], subsample: str = "all") -> List[List[Datum]]:
    """Keep the first (base) or last (new) half of the train labels and relabel them from 0.

    The labels of the first list, sorted, are split at ``ceil(n / 2)``; every list is filtered and
    relabelled the same way.
    """
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
    """Paths that do not exist, checked with one directory listing per folder (fast on large splits)."""
    listings: Dict[str, set] = {}
    missing = []
    for path in paths:
        folder, name = os.path.split(path)
        if folder not in listings:
            try:
                listings[folder] = set(os.listdir(folder))
            except OSError:
                listings[folder] = set()
        if name not in listings[folder] and not os.path.exists(path):
            missing.append(path)
    return missing


# ------------------------------------------------------------------------------------------------------------
# The base class
# ------------------------------------------------------------------------------------------------------------
class BenchmarkDataset(DatasetBase):
    """Base of the benchmark datasets: a subclass declares its layout and implements ``read_raw``.

    Declarations (class attributes):
      folder        dataset folder under ``DATASET.ROOT``
      image_folder  image folder under ``folder``; split-file paths are relative to it
      split_file    ``split_zhou_<Name>.json``, or None when the dataset has fixed split lists
      raw_files     files (relative to ``folder``) that ``read_raw`` needs when there is no split file
      template      the one prompt template of the dataset (``dataset_templates`` returns it)
      doc_anchor    the section of DATASETS.md that explains the layout (error messages point there)
      fewshot_val   whether few-shot sampling also applies to val (and the pickle holds val)
    """

    folder: str = ""
    image_folder: str = ""
    split_file: Optional[str] = None
    raw_files: Tuple[str, ...] = ()
    template: str = "a photo of a {}."
    doc_anchor: str = ""
    fewshot_val: bool = True
    label_map_to_train_classes: Optional[List[int]] = None
    train_classnames: Optional[List[str]] = None  # classes a model evaluated here was built for (ImageNet-A/-R)

    def __init__(self, cfg):
        self.root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = os.path.join(self.root, self.folder)
        self.image_dir = os.path.join(self.dataset_dir, self.image_folder)
        self.split_path = os.path.join(self.dataset_dir, self.split_file) if self.split_file else None
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        self.require(self.dataset_dir, what="dataset folder")

        train, val, test = self.load_full_split()
        train, val = self.fewshot(train, val, int(cfg.DATASET.NUM_SHOTS), cfg.SEED)
        subsample = cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")
        train, val, test = self.subsample(train, val, test, subsample)
        super().__init__(train_x=train, val=val, test=test)

    # -- declarations a subclass may override ---------------------------------------------------------------
    def read_raw(self) -> Split:
        """Build train/val/test from the raw annotations (the split file is absent)."""
        raise NotImplementedError(f"{type(self).__name__} cannot build its split without {self.split_file}")

    # -- errors ---------------------------------------------------------------------------------------------
    def docs_hint(self) -> str:
        return f"See {DOCS}, section '{type(self).__name__}' ({DOCS}#{self.doc_anchor or type(self).__name__.lower()})."

    def require(self, *paths: str, what: str = "file", reason: str = "") -> None:
        """Raise ``DatasetNotFoundError`` for the first path that does not exist (relative to the dataset folder)."""
        for path in paths:
            full = path if os.path.isabs(path) else os.path.join(self.dataset_dir, path)
            if not os.path.exists(full):
                raise DatasetNotFoundError(
                    f"{type(self).__name__}: {what} not found: {full}{reason}. "
                    f"DATASET.ROOT is {self.root}. {self.docs_hint()}")

    def check_images_exist(self, *splits: Sequence[Datum], source: str) -> None:
        paths = list(dict.fromkeys(d.impath for split in splits for d in split))
        missing = find_missing(paths)
        if missing:
            shown = "\n  ".join(missing[:5])
            raise MissingImagesError(
                f"{type(self).__name__}: {len(missing)} of {len(paths)} images listed by {source} are not on "
                f"disk, for example:\n  {shown}\nThe split/few-shot file does not match the images under "
                f"{self.image_dir}. {self.docs_hint()}")

    # -- split files ----------------------------------------------------------------------------------------
    def load_full_split(self) -> Split:
        """train, val, test before few-shot sampling: from the split file, else from raw annotations."""
        self.require(self.image_dir, what="image folder")
        if self.split_path is None:
            self.require(*self.raw_files, what="annotation file")
            return self._read_raw_checked()
        if os.path.isfile(self.split_path):
            logger.info("Reading split from %s", self.split_path)
            return self.read_split(self.split_path)
        self.require(*self.raw_files, what="annotation file",
                     reason=f" (needed to build {self.split_file}, which is also absent; downloading the split "
                            f"file is the usual way: python -m datasets.download splits --root {self.root})")
        logger.info("%s not found: building the split from the raw annotations", self.split_path)
        train, val, test = self._read_raw_checked()
        self.write_split(train, val, test, self.split_path)
        logger.info("Wrote split to %s", self.split_path)
        return train, val, test

    def _read_raw_checked(self) -> Split:
        train, val, test = self.read_raw()
        self.check_images_exist(train, val, test, source=f"the annotations in {self.dataset_dir}")
        return train, val, test

    def read_split(self, fpath: str) -> Split:
        """Read a ``split_zhou_*.json`` file; its paths are relative to the image folder."""
        import json

        with open(fpath) as f:
            split = json.load(f)
        entries = {key: [(os.path.join(self.image_dir, rel), int(label), cname) for rel, label, cname in split[key]]
                   for key in ("train", "val", "test")}
        # Check before building Datum objects: Dassl's Datum asserts that its file exists.
        self.check_images_exist(*([_Path(p) for p, _, _ in rows] for rows in entries.values()), source=fpath)
        train, val, test = ([Datum(impath=p, label=y, classname=c) for p, y, c in entries[key]]
                            for key in ("train", "val", "test"))
        return train, val, test

    def write_split(self, train: Sequence[Datum], val: Sequence[Datum], test: Sequence[Datum], fpath: str) -> None:
        def rows(items):
            return [[os.path.relpath(d.impath, self.image_dir).replace(os.sep, "/"), d.label, d.classname]
                    for d in items]

        write_json_atomic({"train": rows(train), "val": rows(val), "test": rows(test)}, fpath)

    # -- few-shot -------------------------------------------------------------------------------------------
    def fewshot(self, train: List[Datum], val: List[Datum], num_shots: int, seed) -> Tuple[List[Datum], List[Datum]]:
        """K items per class for train and min(K, 4) for val, cached per (K, seed); K < 1 keeps everything."""
        if num_shots < 1:
            return train, val
        fpath = os.path.join(self.split_fewshot_dir, f"shot_{num_shots}-seed_{seed}.pkl")
        if os.path.isfile(fpath):
            logger.info("Loading few-shot data from %s", fpath)
            data = load_datum_pickle(fpath)
            train = self.rebase(data["train"])
            if self.fewshot_val:
                val = self.rebase(data["val"])
            self.check_images_exist(train, val if self.fewshot_val else [], source=fpath)
            return train, val
        self._log_short_classes(train, num_shots, "train")
        train = self.generate_fewshot_dataset(train, num_shots=num_shots)
        data = {"train": train}
        if self.fewshot_val:
            self._log_short_classes(val, min(num_shots, 4), "val")
            val = self.generate_fewshot_dataset(val, num_shots=min(num_shots, 4))
            data["val"] = val
        write_pickle_atomic(data, fpath)
        logger.info("Saved few-shot data to %s", fpath)
        return train, val

    def _log_short_classes(self, items: Sequence[Datum], k: int, split: str) -> None:
        # The built-in engine's generate_fewshot_dataset already logs this once per call; Dassl's does not.
        if ENGINE_NAME == "builtin":
            return
        counts: Dict[int, int] = {}
        for d in items:
            counts[d.label] = counts.get(d.label, 0) + 1
        short = sum(1 for n in counts.values() if n < k)
        if short:
            logger.warning("%d class(es) have fewer than %d %s images; all their images are used", short, k, split)

    def rebase(self, items: Sequence[Datum]) -> List[Datum]:
        """Re-root absolute paths written on another machine (or before the root moved) onto ``dataset_dir``.

        A path is rewritten only when it does not already live under ``dataset_dir``; the part after the
        last ``/<folder>/`` component is kept.
        """
        prefix = self.dataset_dir + os.sep
        marker = "/" + self.folder + "/"
        out = []
        for d in items:
            path = d.impath
            if not path.startswith(prefix):
                posix = path.replace("\\", "/")
                cut = posix.rfind(marker)
                if cut >= 0:
                    path = os.path.join(self.dataset_dir, *posix[cut + len(marker):].split("/"))
                    d = Datum(impath=path, label=d.label, domain=d.domain, classname=d.classname)
            out.append(d)
        return out

    # -- classes --------------------------------------------------------------------------------------------
    def subsample(self, train, val, test, subsample: str) -> Split:
        train, val, test = subsample_classes(train, val, test, subsample=subsample)
        return train, val, test


class _Path:
    """A stand-in with an ``impath`` so that ``check_images_exist`` can run before Datum objects exist."""

    __slots__ = ("impath",)

    def __init__(self, impath: str):
        self.impath = impath


def make_groups(image_dir: str, ignored: Sequence[str] = (),
                rename: Optional[Callable[[str], str]] = None) -> List[Tuple[int, str, List[str]]]:
    """(label, classname, image paths) for an ``<image_dir>/<class>/<image>`` tree, classes sorted."""
    classes = [c for c in list_dirs(image_dir) if c not in set(ignored)]
    groups = []
    for label, folder in enumerate(classes):
        class_dir = os.path.join(image_dir, folder)
        groups.append((label, rename(folder) if rename else folder,
                       [os.path.join(class_dir, f) for f in list_files(class_dir)]))
    return groups
