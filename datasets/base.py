"""The shared mechanics of the benchmark datasets; each dataset class only declares its layout.

Four steps, all here: the full train/val/test lists (the official ``split_zhou_<Name>.json``, else our
``split_built_<Name>.json``, else built now by ``read_raw`` and saved under that name), a check that every
listed image exists, few-shot sampling (with the held-out selection sets) and class subsampling. What each
step reads and writes, and how a CoOp tree stays usable: DATASETS.md ("What the readers do with your tree").
File formats: ``datasets/files.py``; list helpers and sampling rules: ``datasets/splits.py``.
"""
import json
import logging
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from engine import DatasetBase, Datum, generate_fewshot, write_json

from .errors import DatasetFileError, DatasetNotFoundError, MissingImagesError
from .files import (
    BUILT_SPLIT,
    FEWSHOT_PICKLE,
    FEWSHOT_RECORD,
    check_rows,
    load_datum_pickle,
    pickle_rows,
    read_fewshot_record,
    read_json_with_sha,
    sha256_file,
    to_rows,
    write_fewshot_record,
    written_by_us,
)
from .splits import Split, draw_heldout_val, fewshot_val_per_class, find_missing, subsample_classes

logger = logging.getLogger(__name__)

DOCS = "DATASETS.md"
_warned_unofficial = set()  # dataset folders warned about (several datasets of one run share a warning)


class BenchmarkDataset(DatasetBase):
    """Base of the benchmark datasets: a subclass declares its layout below and implements ``read_raw``."""

    folder: str = ""  # dataset folder under ``DATASET.ROOT``
    image_folder: str = ""  # image folder under ``folder``; split-file paths are relative to it
    split_file: Optional[str] = None  # ``split_zhou_<Name>.json``, or None when the split lists are fixed
    raw_files: Tuple[str, ...] = ()  # files (relative to ``folder``) ``read_raw`` needs without a split file
    template: str = "a photo of a {}."  # the dataset's one prompt template (``dataset_templates``)
    doc_anchor: str = ""  # the section of DATASETS.md on the layout (default: the class name, lower-cased)
    fewshot_val: bool = True  # few-shot sampling also applies to val (and the few-shot file holds val)
    val_is_test: bool = False  # val is the test set (ImageNet): a held-out val is drawn for model selection
    official_split: bool = True  # False when the split was built from raw annotations (not the published one)
    heldout_val: Optional[List[Datum]] = None
    heldout_paper: Optional[List[Datum]] = None  # val_is_test: held-out train images, per class as many as test
    heldout_file: Optional[str] = None  # the file listing the held-out sets (relative to the dataset folder)
    val_split: Optional[List[Datum]] = None  # the whole val split (few-shot runs sample ``val`` from it)
    label_map_to_train_classes: Optional[List[int]] = None
    train_classnames: Optional[List[str]] = None  # classes a model evaluated here was built for (ImageNet-A/-R)

    def __init__(self, cfg):
        self.root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = os.path.join(self.root, self.folder)
        self.image_dir = os.path.join(self.dataset_dir, self.image_folder)
        self.split_path = os.path.join(self.dataset_dir, self.split_file) if self.split_file else None
        self.built_split_path = os.path.join(self.dataset_dir, BUILT_SPLIT.format(name=type(self).__name__))
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        self.split_sha256: Optional[str] = None  # of the split file read (few-shot files drawn from it record it)
        self.split_source: Optional[str] = None  # the file or folder the full lists came from
        self._full: Optional[Split] = None
        self.require(self.dataset_dir, what="dataset folder")

        train, val, test, extra = self.build_splits(int(cfg.DATASET.NUM_SHOTS), cfg.SEED)
        names = sorted(extra)
        subsample = cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")
        train, val, test, *lists = self.subsample(subsample, train, val, test, *(extra[k] for k in names))
        for key, items in zip(names, lists):
            setattr(self, key, items)  # val_split, heldout_val, heldout_paper (datasets/validation.py)
        super().__init__(train_x=train, val=val, test=test)

    # -- declarations a subclass may override ---------------------------------------------------------------
    def read_raw(self) -> Split:
        """Build train/val/test from the raw annotations (the split file is absent)."""
        raise NotImplementedError(f"{type(self).__name__} cannot build its split without {self.split_file}")

    def load_eval_split(self) -> Tuple[List[Datum], List[Datum]]:
        """(val, test) before few-shot sampling; ImageNet overrides it to avoid reading its full train list."""
        return self.load_full_split()[1:]

    # -- errors ---------------------------------------------------------------------------------------------
    def docs_hint(self) -> str:
        return f"See {DOCS}, section '{type(self).__name__}' ({DOCS}#{self.doc_anchor or type(self).__name__.lower()})."

    def download_hint(self) -> str:
        return f"python -m datasets.download splits --root {self.root} --dataset {type(self).__name__}"

    def require(self, *paths: str, what: str = "file", reason: str = "") -> None:
        """Raise ``DatasetNotFoundError`` for the first path that does not exist (relative to the dataset folder)."""
        for path in paths:
            full = path if os.path.isabs(path) else os.path.join(self.dataset_dir, path)
            if not os.path.exists(full):
                raise DatasetNotFoundError(
                    f"{type(self).__name__}: {what} not found: {full}{reason}. "
                    f"DATASET.ROOT is {self.root}. {self.docs_hint()}")

    def check_images_exist(self, paths: Iterable[str], source: str) -> None:
        paths = list(dict.fromkeys(paths))
        missing = find_missing(paths)
        if missing:
            # One line (train.py prints it as the run's only error line): the first missing files name the problem.
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise MissingImagesError(
                f"{type(self).__name__}: {len(missing)} of {len(paths)} images listed by {source} are not on "
                f"disk ({', '.join(missing[:3])}{more}): the split/few-shot file does not match the images under "
                f"{self.image_dir}. {self.docs_hint()}")

    # -- the splits of a run --------------------------------------------------------------------------------
    def build_splits(self, num_shots: int, seed) -> Tuple[List[Datum], List[Datum], List[Datum], Dict[str, List[Datum]]]:
        """train, val, test, and the selection sets beside them before class subsampling: ``val_split`` (the
        whole val split) or, for ``val_is_test`` datasets, the held-out ``heldout_val`` and ``heldout_paper``."""
        if num_shots < 1:
            train, val, test = self.load_full_split()
            return train, val, test, (self._heldout(train, num_shots, seed) if self.val_is_test else {"val_split": val})
        val, test = self.load_eval_split()
        train, fewshot_val, held = self.fewshot_sets(num_shots, seed)
        return train, (fewshot_val if self.fewshot_val else val), test, (held if self.val_is_test else {"val_split": val})

    def _heldout(self, fewshot_train: List[Datum], num_shots: int, seed) -> Dict[str, List[Datum]]:
        """A ``val_is_test`` dataset's held-out selection sets: train images outside ``fewshot_train``."""
        full_train, _, test = self.load_full_split()
        return {key: draw_heldout_val(full_train, fewshot_train, test, num_shots, seed, like_test=like_test)
                for key, like_test in (("heldout_val", False), ("heldout_paper", True))}

    # -- split files ----------------------------------------------------------------------------------------
    def load_full_split(self) -> Split:
        """train, val, test before few-shot sampling (read once per dataset object)."""
        if self._full is None:
            self._full = self._load_full_split()
        return self._full

    def _load_full_split(self) -> Split:
        self.require(self.image_dir, what="image folder")
        if self.split_path is None:
            self.require(*self.raw_files, what="annotation file")
            self.split_source = self.dataset_dir
            return self._read_raw_checked()
        if os.path.isfile(self.split_path):
            logger.info("Reading split from %s", self.split_path)
            return self.read_split(self.split_path)
        self.official_split = False
        if os.path.isfile(self.built_split_path):
            try:
                split = self.read_split(self.built_split_path)
            except DatasetFileError as err:
                logger.warning("%s; it was built by this code, so it is built again", err)
            else:
                self._warn_unofficial()
                return split
        self.require(*self.raw_files, what="annotation file",
                     reason=f" (needed to build a split because the official {self.split_file} is absent; "
                            f"downloading it is the usual way: {self.download_hint()})")
        logger.info("%s not found: building the split from the raw annotations", self.split_path)
        train, val, test = self._read_raw_checked()
        write_json({key: to_rows(items, self.image_dir) for key, items in
                    (("train", train), ("val", val), ("test", test))}, self.built_split_path)
        self.split_sha256, self.split_source = sha256_file(self.built_split_path), self.built_split_path
        logger.info("Wrote the built split to %s", self.built_split_path)
        self._warn_unofficial()
        return train, val, test

    def _warn_unofficial(self) -> None:
        if self.dataset_dir not in _warned_unofficial:
            _warned_unofficial.add(self.dataset_dir)
            logger.warning("%s: the official split %s is absent; this run uses %s, built from the raw "
                           "annotations. Its accuracies are NOT comparable with published numbers. Get the "
                           "official split with: %s", type(self).__name__, self.split_path,
                           self.built_split_path, self.download_hint())

    def _read_raw_checked(self) -> Split:
        train, val, test = self.read_raw()
        self.check_images_exist((d.impath for d in train + val + test), source=f"the annotations in {self.dataset_dir}")
        return train, val, test

    def read_split(self, fpath: str) -> Split:
        """A split file in CoOp's format (paths relative to the image folder); ``DatasetFileError`` if unusable."""
        try:
            obj, sha = read_json_with_sha(fpath)
            rows = check_rows(obj, ("train", "val", "test"))
        except ValueError as err:
            official = os.path.basename(fpath) == self.split_file
            fix = (f"it is the published split and cannot be rebuilt: download it again with "
                   f"{self.download_hint()} --force" if official else "delete it to have it built again")
            raise DatasetFileError(f"{type(self).__name__}: split file {fpath} is unusable: {err}; {fix}") from None
        self.split_sha256, self.split_source = sha, fpath
        return tuple(self._datums([rows[key] for key in ("train", "val", "test")], self.image_dir, fpath))

    def _datums(self, lists: Sequence[Sequence[Tuple[str, int, str]]], base_dir: str,
                source: str) -> List[List[Datum]]:
        """Datum lists for row lists (paths relative to ``base_dir``), checked on disk first: Dassl's ``Datum``
        asserts that its file exists without saying which file listed it."""
        items = [[(os.path.join(base_dir, *rel.split("/")), label, cname) for rel, label, cname in rows]
                 for rows in lists]
        self.check_images_exist((p for part in items for p, _, _ in part), source=source)
        return [[Datum(impath=p, label=y, classname=c) for p, y, c in part] for part in items]

    # -- few-shot -------------------------------------------------------------------------------------------
    def fewshot_sets(self, num_shots: int, seed) -> Tuple[List[Datum], Optional[List[Datum]], Dict[str, List[Datum]]]:
        """(few-shot train, few-shot val or None, held-out sets by name) for (K, seed), from our file when valid.

        Our file is valid when it was drawn from the split file read now (same hash) and, when CoOp's
        pickle for (K, seed) exists, copied from that very pickle (same hash). Otherwise the picks are
        taken from CoOp's pickle, or drawn with Dassl's rule, and our file is (re)written.
        """
        record_path = os.path.join(self.split_fewshot_dir, FEWSHOT_RECORD.format(shots=num_shots, seed=seed))
        pickle_path = os.path.join(self.split_fewshot_dir, FEWSHOT_PICKLE.format(shots=num_shots, seed=seed))
        theirs = os.path.isfile(pickle_path) and not written_by_us(pickle_path)
        pickle_sha = sha256_file(pickle_path) if theirs else None
        keys = ["train"] + (["val"] if self.fewshot_val else []) + (["heldout_val"] if self.val_is_test else [])
        self.heldout_file = os.path.relpath(record_path, self.dataset_dir) if self.val_is_test else None
        record = self._read_record(record_path, keys, pickle_sha) if os.path.isfile(record_path) else None
        if record is not None:
            logger.info("Loading few-shot data from %s", record_path)
            sets = dict(zip(keys, self._datums([record[k] for k in keys], self.dataset_dir, record_path)))
            held = {"heldout_val": sets["heldout_val"], "heldout_paper": self._heldout_paper(
                record, record_path, sets["train"], num_shots, seed)} if self.val_is_test else {}
            return sets["train"], sets.get("val"), held
        return self._make_record(record_path, pickle_path, num_shots, seed, pickle_sha)

    def _heldout_paper(self, record: dict, record_path: str, train: List[Datum], num_shots: int, seed) -> List[Datum]:
        """The test-sized held-out set from the few-shot file; a file written before it existed gains it once."""
        if "heldout_paper" in record:
            return self._datums([check_rows(record, ["heldout_paper"])["heldout_paper"]], self.dataset_dir,
                                record_path)[0]
        full_train, _, test = self.load_full_split()
        held = draw_heldout_val(full_train, train, test, num_shots, seed, like_test=True)
        with open(record_path) as f:  # the file as it is, plus the new list (the picks stay exactly as written)
            rows = json.load(f)
        rows["heldout_paper"] = to_rows(held, self.dataset_dir)
        write_json(rows, record_path, indent=None)
        logger.info("Added the test-sized held-out set (%d images) to %s", len(held), record_path)
        return held

    def _read_record(self, fpath: str, keys: Sequence[str], pickle_sha: Optional[str]) -> Optional[dict]:
        """Our few-shot file, or None (with the reason logged) when it must be made again."""
        try:
            record = read_fewshot_record(fpath, keys)
        except ValueError as err:
            logger.warning("%s is unusable (%s); it was written by this code, so it is made again "
                           "from the same seed", fpath, err)
            return None
        if pickle_sha is not None and record.get("coop_pickle_sha256") != pickle_sha:
            logger.info("%s was not made from the CoOp few-shot file beside it; taking the picks from that file",
                        fpath)
            return None
        made_from = record.get("split_sha256")
        if made_from and self.split_sha256 and made_from != self.split_sha256:
            logger.warning("%s was drawn from another version of the split file; drawing it again", fpath)
            return None
        return record

    def _make_record(self, record_path: str, pickle_path: str, num_shots: int, seed,
                     pickle_sha: Optional[str]) -> Tuple[List[Datum], Optional[List[Datum]], Dict[str, List[Datum]]]:
        train = val = None
        legacy = os.path.isfile(pickle_path) and pickle_sha is None  # a CoOp-named pickle of an earlier version of ours
        if os.path.isfile(pickle_path):
            try:
                train, val = self._read_fewshot_pickle(pickle_path)
            except DatasetFileError as err:
                if not legacy:
                    raise DatasetFileError(
                        f"{type(self).__name__}: few-shot {err}. It was written by CoOp/Dassl, so it is left as it "
                        f"is: delete it to have the {num_shots}-shot set drawn again for seed {seed}") from None
                logger.warning("%s; it was written by an earlier version of this code, so it is drawn again", err)
        source = pickle_path
        if train is None:
            full_train, full_val, _ = self.load_full_split()
            logger.info("Drawing a %d-shot set (seed %s)", num_shots, seed)
            train = generate_fewshot(self, full_train, num_shots, "train")
            if self.fewshot_val:
                val = generate_fewshot(self, full_val, fewshot_val_per_class(num_shots), "val")
            source = self.split_source
        held = self._heldout(train, num_shots, seed) if self.val_is_test else {}
        meta = {"dataset": type(self).__name__, "num_shots": num_shots, "seed": seed,
                "drawn_from": os.path.relpath(source, self.dataset_dir) if source else None,
                "split_sha256": self.split_sha256, "coop_pickle_sha256": pickle_sha}
        write_fewshot_record(record_path, meta, self.dataset_dir, train=train, val=val, **held)
        logger.info("Saved few-shot data to %s", record_path)
        if legacy:
            os.remove(pickle_path)
            logger.info("Removed %s: an earlier version of this code wrote it in a format CoOp/Dassl cannot read; "
                        "its picks are kept in %s", pickle_path, record_path)
        return train, val, held  # val: None unless ``fewshot_val``

    def _read_fewshot_pickle(self, fpath: str) -> Tuple[List[Datum], Optional[List[Datum]]]:
        """CoOp's (or a legacy) few-shot pickle: its train (and val) lists, re-rooted and checked on disk."""
        logger.info("Loading few-shot data from %s", fpath)
        data = load_datum_pickle(fpath)
        train = self.rebase(pickle_rows(data, "train", fpath))
        val = self.rebase(pickle_rows(data, "val", fpath)) if self.fewshot_val else None
        self.check_images_exist((d.impath for d in train + (val or [])), source=fpath)
        return train, val

    def rebase(self, items: Sequence[Datum]) -> List[Datum]:
        """Re-root absolute paths from another machine (or an old root) outside ``dataset_dir`` onto it,
        keeping the part after the last ``/<folder>/``."""
        marker = "/" + self.folder + "/"
        out = []
        for d in items:
            posix = d.impath.replace("\\", "/")
            cut = posix.rfind(marker)
            if cut >= 0 and not d.impath.startswith(self.dataset_dir + os.sep):
                path = os.path.join(self.dataset_dir, *posix[cut + len(marker):].split("/"))
                d = Datum(impath=path, label=d.label, domain=d.domain, classname=d.classname)
            out.append(d)
        return out

    # -- classes --------------------------------------------------------------------------------------------
    def subsample(self, subsample: str, *splits: Sequence[Datum]) -> List[List[Datum]]:
        """``DATASET.SUBSAMPLE_CLASSES`` applied to every list (the first one, train, decides the classes)."""
        return subsample_classes(*splits, subsample=subsample)
