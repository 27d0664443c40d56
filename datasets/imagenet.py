"""ImageNet-1k, and the shared reader of the ImageNet test-only variants.

Layout: ``imagenet/images/{train,val}/<wnid>/*.JPEG`` and ``imagenet/classnames.txt`` (lines
``<wnid> <class name>``). There is no split file: test is the val folder, and val is the test set too
(as in CoOp); few-shot sampling applies to train only, so ``split_fewshot/shot_K-seed_S.pkl`` holds
``{"train": [...]}``. The full lists are cached in ``imagenet/preprocessed.pkl``.

Labels are the index of the wnid in the sorted list of class folders. Images inside a class folder
are listed in sorted order too. CoOp/Dassl list them in raw ``os.listdir`` order, which depends on the
file system, so their few-shot picks differ from machine to machine; sorting gives the same picks
everywhere. An existing ``preprocessed.pkl`` written by CoOp is read as is (keeping its order), so
users who hold one keep getting their published samples.
"""
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional

from engine import DATASET_REGISTRY, Datum

from .base import (
    BenchmarkDataset,
    DatasetNotFoundError,
    list_dirs,
    list_files,
    load_datum_pickle,
    write_pickle_atomic,
)

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
    classnames = OrderedDict()
    with open(fpath) as f:
        for line in f:
            if line.strip():
                wnid, _, name = line.strip().partition(" ")
                classnames[wnid] = name.strip()
    return classnames


def imagenet_label_of(classnames: Dict[str, str]) -> Dict[str, int]:
    """{wnid: ImageNet label}: the wnid's index among all wnids sorted, as ImageNet's reader numbers them."""
    return {wnid: i for i, wnid in enumerate(sorted(classnames))}


@DATASET_REGISTRY.register()
class ImageNet(BenchmarkDataset):
    folder = "imagenet"
    image_folder = "images"
    split_file = None
    raw_files = ("classnames.txt", "images/train", "images/val")
    template = "a photo of a {}."
    doc_anchor = "imagenet"
    fewshot_val = False

    def load_full_split(self):
        cache = os.path.join(self.dataset_dir, "preprocessed.pkl")
        if os.path.isfile(cache):
            logger.info("Reading ImageNet lists from %s", cache)
            data = load_datum_pickle(cache)
            train, test = self.rebase(data["train"]), self.rebase(data["test"])
            self.check_images_exist(train, test, source=cache)
            return train, test, test
        self.require(*self.raw_files, what="file or folder")
        classnames = read_classnames(os.path.join(self.dataset_dir, "classnames.txt"))
        train = self._read_folder("train", classnames)
        test = self._read_folder("val", classnames)
        write_pickle_atomic({"train": train, "test": test}, cache)
        logger.info("Saved ImageNet lists to %s", cache)
        return train, test, test

    def _read_folder(self, split: str, classnames: Dict[str, str]) -> List[Datum]:
        split_dir = os.path.join(self.image_dir, split)
        items = []
        for label, wnid in enumerate(list_dirs(split_dir)):
            if wnid not in classnames:
                raise DatasetNotFoundError(
                    f"ImageNet: folder {os.path.join(split_dir, wnid)} has no line in "
                    f"{os.path.join(self.dataset_dir, 'classnames.txt')}. {self.docs_hint()}")
            class_dir = os.path.join(split_dir, wnid)
            items.extend(Datum(impath=os.path.join(class_dir, name), label=label, classname=classnames[wnid])
                         for name in list_files(class_dir))
        return items


class ImageNetVariant(BenchmarkDataset):
    """A test-only ImageNet variant: train_x, val and test are all its test set.

    NUM_SHOTS and SUBSAMPLE_CLASSES do not apply (as in CoOp). Class names come from
    ``classnames.txt``: the variant's own copy when present (CoOp's instructions put one there), else
    ``imagenet/classnames.txt`` under the same root.
    """

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

    def load_full_split(self):
        self.require(self.image_dir, what="image folder")
        classnames = read_classnames(self.classnames_file())
        data = self.read_variant(classnames)
        return data, data, data

    def read_variant(self, classnames: "OrderedDict[str, str]") -> List[Datum]:
        raise NotImplementedError

    def read_wnid_folders(self, classnames: Dict[str, str]) -> List[Datum]:
        """``<image_dir>/<wnid>/*``: label = index among the sorted wnid folders (files such as README.txt skipped)."""
        items = []
        wnids = list_dirs(self.image_dir)
        unknown = [w for w in wnids if w not in classnames]
        if unknown:
            raise DatasetNotFoundError(
                f"{type(self).__name__}: folders {unknown[:5]} under {self.image_dir} are not listed in "
                f"{self.classnames_file()}. {self.docs_hint()}")
        for label, wnid in enumerate(wnids):
            class_dir = os.path.join(self.image_dir, wnid)
            items.extend(Datum(impath=os.path.join(class_dir, name), label=label, classname=classnames[wnid])
                         for name in list_files(class_dir))
        self.wnids = wnids
        return items

    def fewshot(self, train, val, num_shots, seed):
        return train, val

    def subsample(self, train, val, test, subsample):
        if (subsample or "all").lower() != "all":
            logger.warning("%s is a test-only dataset: DATASET.SUBSAMPLE_CLASSES=%s is ignored",
                           type(self).__name__, subsample)
        return train, val, test


class ImageNetSubsetVariant(ImageNetVariant):
    """ImageNet-A / -R: 200 of ImageNet's classes, labelled 0..199 in sorted wnid order.

    ``imagenet_label_map`` (also ``label_map_to_train_classes``) gives, for each of those labels, the
    ImageNet label of the same wnid, so a 1000-class ImageNet classifier is evaluated on them by
    taking its logits at these columns. ``train_classnames`` lists ImageNet's class names in label
    order: the classes such a classifier is built for.
    """

    def read_variant(self, classnames):
        items = self.read_wnid_folders(classnames)
        to_imagenet = imagenet_label_of(classnames)
        self.label_map_to_train_classes = [to_imagenet[w] for w in self.wnids]
        self.train_classnames = [classnames[w] for w in sorted(classnames, key=to_imagenet.get)]
        return items

    @property
    def imagenet_label_map(self) -> Optional[List[int]]:
        return self.label_map_to_train_classes
