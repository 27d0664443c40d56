"""ImageNet-1k and its four test-only variants (ImageNetV2, -Sketch, -A, -R).

No split file: test (and val, as in CoOp) is the val folder; few-shot sampling applies to train only, and
selection uses held-out training images. Images are listed sorted (CoOp's raw ``os.listdir`` order varies
between file systems); a CoOp ``preprocessed.pkl`` is read as is. Layouts, the cached training list and the
differences from CoOp: DATASETS.md ("ImageNet", "Where our readers differ from CoOp's").
"""
import logging
import os
from collections import OrderedDict
from functools import cached_property
from typing import Dict, List, Optional, Sequence

from engine import DATASET_REGISTRY, Datum, write_json

from .base import BenchmarkDataset
from .errors import DatasetFileError, DatasetNotFoundError
from .files import (
    FORMAT_VERSION,
    LISTS_FORMAT,
    load_datum_pickle,
    pickle_rows,
    read_json_with_sha,
    written_by_us,
)
from .splits import folder_items, group_by_label, list_dirs, read_lines

logger = logging.getLogger(__name__)

IMAGENET_TEMPLATES_SELECT = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


def read_classnames(fpath: str) -> "OrderedDict[str, str]":
    """``classnames.txt`` -> {wnid: class name}, in file order."""
    pairs = (line.partition(" ") for line in read_lines(fpath))
    return OrderedDict((wnid, name.strip()) for wnid, _, name in pairs)


LISTS_FILE = "lists.taskres.json"  # our cache of the training image list (CoOp's is preprocessed.pkl)


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    """ImageNet-1k. A run whose few-shot file exists reads that file, ``classnames.txt`` and the val
    folder's listing only: the 1.28 M-image training list is read only to draw a new few-shot set."""

    folder = "imagenet"
    image_folder = "images"
    split_file = None
    raw_files = ("classnames.txt", "images/train", "images/val")
    fewshot_val = False
    val_is_test = True

    def load_eval_split(self):
        """(val, test): both the val folder, listed in sorted order (its listing also proves the files exist)."""
        if getattr(self, "_eval_items", None) is None:
            self.require("classnames.txt", "images/val", what="file or folder")
            self._eval_items = self._read_folder("val")
        return self._eval_items, self._eval_items

    def _load_full_split(self):
        _, test = self.load_eval_split()
        self.require("images/train", what="folder")
        return self._full_train(), test, test

    @cached_property
    def wnid_names(self) -> Dict[str, str]:
        return read_classnames(os.path.join(self.dataset_dir, "classnames.txt"))

    def _full_train(self) -> List[Datum]:
        """The full training list: CoOp's ``preprocessed.pkl`` (its order gives CoOp's picks), else our list
        file, else a sorted listing of ``images/train`` (then saved to our list file)."""
        coop = os.path.join(self.dataset_dir, "preprocessed.pkl")
        ours = os.path.join(self.dataset_dir, LISTS_FILE)
        if os.path.isfile(coop):
            legacy = written_by_us(coop)
            logger.info("Reading ImageNet lists from %s", coop)
            try:
                train = self.rebase(pickle_rows(load_datum_pickle(coop), "train", coop))
            except DatasetFileError as err:
                if not legacy:
                    raise DatasetFileError(f"ImageNet: {err}. It was written by CoOp/Dassl, so it is left as it "
                                           f"is: delete it to have the image folders listed again") from None
                logger.warning("%s; it was written by an earlier version of this code, so the folders are listed "
                               "again", err)
            else:
                self.split_source = coop
                if legacy:
                    self._write_lists(train, ours)
                    os.remove(coop)
                    logger.info("Removed %s: an earlier version of this code wrote it in a format CoOp/Dassl "
                                "cannot read; its lists are kept in %s", coop, ours)
                return train
        if os.path.isfile(ours):
            try:
                train = self._read_lists(ours)
            except (ValueError, KeyError) as err:
                logger.warning("%s is unusable (%s); it was written by this code, so the folders are listed again",
                               ours, err)
            else:
                self.split_source = ours
                return train
        train = self._read_folder("train")
        self._write_lists(train, ours)
        self.split_source = os.path.join(self.image_dir, "train")
        return train

    def _write_lists(self, train: Sequence[Datum], fpath: str) -> None:
        """Our list file: the image names of each training folder, folders in label order."""
        folders = [[label, os.path.basename(os.path.dirname(items[0].impath)),  # the folder's wnid
                    [os.path.basename(d.impath) for d in items]] for label, items in group_by_label(train).items()]
        write_json({"format": LISTS_FORMAT, "version": FORMAT_VERSION, "folders": folders}, fpath, indent=None)
        logger.info("Saved ImageNet lists to %s", fpath)

    def _read_lists(self, fpath: str) -> List[Datum]:
        logger.info("Reading ImageNet lists from %s", fpath)
        obj, _ = read_json_with_sha(fpath)
        if not isinstance(obj, dict) or obj.get("format") != LISTS_FORMAT or obj.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a {LISTS_FORMAT} file of version {FORMAT_VERSION}")
        train_dir = os.path.join(self.image_dir, "train")
        return [Datum(impath=os.path.join(train_dir, wnid, f), label=label, classname=self.wnid_names[wnid])
                for label, wnid, files in obj["folders"] for f in files]

    def _read_folder(self, split: str) -> List[Datum]:
        split_dir, classnames = os.path.join(self.image_dir, split), self.wnid_names
        items = []
        for label, wnid in enumerate(list_dirs(split_dir)):
            if wnid not in classnames:
                raise DatasetNotFoundError(
                    f"ImageNet: folder {os.path.join(split_dir, wnid)} has no line in "
                    f"{os.path.join(self.dataset_dir, 'classnames.txt')}. {self.docs_hint()}")
            items.extend(folder_items(os.path.join(split_dir, wnid), label, classnames[wnid]))
        return items


class ImageNetVariant(BenchmarkDataset):
    """A test-only ImageNet variant: train_x, val and test are all its test set; NUM_SHOTS and
    SUBSAMPLE_CLASSES do not apply (as in CoOp). Class names: its own ``classnames.txt``, else ImageNet's."""

    split_file = None
    fewshot_val = False

    def classnames_file(self) -> str:
        own = os.path.join(self.dataset_dir, "classnames.txt")
        if os.path.isfile(own):
            return own
        shared = os.path.join(self.root, "imagenet", "classnames.txt")
        self.require(shared, what="ImageNet class list (classnames.txt, looked for in the variant's folder "
                                  "and in imagenet/)")
        return shared

    def _load_full_split(self):
        self.require(self.image_dir, what="image folder")
        data = self.read_variant(read_classnames(self.classnames_file()))
        self.split_source = self.image_dir
        return data, data, data

    def build_splits(self, num_shots, seed):
        return (*self.load_full_split(), {})

    def read_variant(self, classnames: Dict[str, str]) -> List[Datum]:
        """``<image_dir>/<wnid>/*``: label = index among the sorted wnid folders (files such as README.txt skipped)."""
        wnids = list_dirs(self.image_dir)
        unknown = [w for w in wnids if w not in classnames]
        if unknown:
            raise DatasetNotFoundError(
                f"{type(self).__name__}: folders {unknown[:5]} under {self.image_dir} are not listed in "
                f"{self.classnames_file()}. {self.docs_hint()}")
        self.wnids = wnids
        return [d for label, wnid in enumerate(wnids)
                for d in folder_items(os.path.join(self.image_dir, wnid), label, classnames[wnid])]

    def subsample(self, subsample, *splits):
        if (subsample or "all").lower() != "all":
            logger.warning("%s is a test-only dataset: DATASET.SUBSAMPLE_CLASSES=%s is ignored",
                           type(self).__name__, subsample)
        return list(splits)


class ImageNetSubsetVariant(ImageNetVariant):
    """ImageNet-A / -R: 200 of ImageNet's classes, labelled 0..199 in sorted wnid order (README.txt ignored).
    A 1000-class ImageNet classifier is evaluated on them through its logits at ``imagenet_label_map``
    (ImageNet's label of each); ``train_classnames`` are ImageNet's names in label order."""

    def read_variant(self, classnames):
        items = super().read_variant(classnames)
        to_imagenet = {wnid: i for i, wnid in enumerate(sorted(classnames))}  # as ImageNet numbers them
        self.label_map_to_train_classes = [to_imagenet[w] for w in self.wnids]
        self.train_classnames = [classnames[w] for w in sorted(classnames, key=to_imagenet.get)]
        return items

    @property
    def imagenet_label_map(self) -> Optional[List[int]]:
        return self.label_map_to_train_classes


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    """ImageNetV2 (matched frequency): folder ``<label>`` holds ImageNet label ``label``; class names from
    ``classnames.txt`` in file order."""

    folder = "imagenetv2"
    image_folder = "imagenetv2-matched-frequency-format-val"

    def read_variant(self, classnames):
        items = []
        for label, wnid in enumerate(classnames):
            class_dir = os.path.join(self.image_dir, str(label))
            self.require(class_dir, what=f"folder of class {label} ({classnames[wnid]})")
            items.extend(folder_items(class_dir, label, classnames[wnid]))
        return items


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    """ImageNet-Sketch: ``imagenet-sketch/images/<wnid>/*.JPEG``, ImageNet's 1000 classes and labels."""

    folder = "imagenet-sketch"
    image_folder = "images"


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetSubsetVariant):
    """ImageNet-A: ``imagenet-adversarial/imagenet-a/<wnid>/*.jpg``."""

    folder = "imagenet-adversarial"
    image_folder = "imagenet-a"


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetSubsetVariant):
    """ImageNet-R: ``imagenet-rendition/imagenet-r/<wnid>/*.jpg``."""

    folder = "imagenet-rendition"
    image_folder = "imagenet-r"
