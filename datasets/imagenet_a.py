"""ImageNet-A: ``imagenet-adversarial/imagenet-a/<wnid>/*.jpg``, 200 ImageNet classes (README.txt ignored).

Labels are 0..199 (sorted wnids); ``dataset.imagenet_label_map`` maps them to ImageNet's labels.
"""
from engine import DATASET_REGISTRY

from .imagenet import ImageNetSubsetVariant


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetSubsetVariant):
    folder = "imagenet-adversarial"
    image_folder = "imagenet-a"
    template = "a photo of a {}."
    doc_anchor = "imageneta"
