"""ImageNet-Sketch: ``imagenet-sketch/images/<wnid>/*.JPEG``, all 1000 ImageNet classes, labelled as ImageNet."""
from engine import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    folder = "imagenet-sketch"
    image_folder = "images"
    template = "a photo of a {}."
    doc_anchor = "imagenetsketch"

    def read_variant(self, classnames):
        return self.read_wnid_folders(classnames)
