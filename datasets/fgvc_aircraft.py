"""FGVC-Aircraft (variant level): ``fgvc_aircraft/images/<id>.jpg`` with fixed train/val/test text lists.

There is no split JSON: ``images_variant_{train,val,test}.txt`` are the split. Labels are line indices
in ``variants.txt``.
"""
import os

from engine import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    folder = "fgvc_aircraft"
    image_folder = "images"
    split_file = None
    raw_files = ("variants.txt", "images_variant_train.txt", "images_variant_val.txt", "images_variant_test.txt")
    template = "a photo of a {}, a type of aircraft."
    doc_anchor = "fgvcaircraft"

    def read_raw(self):
        with open(os.path.join(self.dataset_dir, "variants.txt")) as f:
            classnames = [line.strip() for line in f if line.strip()]
        labels = {name: i for i, name in enumerate(classnames)}
        return tuple(self._read_list(f"images_variant_{split}.txt", labels) for split in ("train", "val", "test"))

    def _read_list(self, name, labels):
        """Lines ``<image id> <variant name, may contain spaces>``."""
        items = []
        with open(os.path.join(self.dataset_dir, name)) as f:
            for line in f:
                if not line.strip():
                    continue
                image_id, variant = line.strip().split(" ", 1)
                items.append(Datum(impath=os.path.join(self.image_dir, image_id + ".jpg"), label=labels[variant],
                                   classname=variant))
        return items
