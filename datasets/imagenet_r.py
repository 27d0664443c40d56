"""ImageNet-R: ``imagenet-rendition/imagenet-r/<wnid>/*.jpg``, 200 ImageNet classes (README.txt ignored).

Labels are 0..199 (sorted wnids); ``dataset.imagenet_label_map`` maps them to ImageNet's labels.
"""
from engine import DATASET_REGISTRY

from .imagenet import ImageNetSubsetVariant


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetSubsetVariant):
    folder = "imagenet-rendition"
    image_folder = "imagenet-r"
    template = "a photo of a {}."
    doc_anchor = "imagenetr"
