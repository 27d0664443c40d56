"""ImageNetV2 (matched frequency): ``imagenetv2/imagenetv2-matched-frequency-format-val/<label>/*.jpeg``.

The folder number is the ImageNet label; class names come from ``classnames.txt`` in file order.
"""
import os

from engine import DATASET_REGISTRY, Datum

from .base import list_files
from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    folder = "imagenetv2"
    image_folder = "imagenetv2-matched-frequency-format-val"
    template = "a photo of a {}."
    doc_anchor = "imagenetv2"

    def read_variant(self, classnames):
        items = []
        for label, wnid in enumerate(classnames):
            class_dir = os.path.join(self.image_dir, str(label))
            self.require(class_dir, what=f"folder of class {label} ({classnames[wnid]})")
            items.extend(Datum(impath=os.path.join(class_dir, name), label=label, classname=classnames[wnid])
                         for name in list_files(class_dir))
        return items
