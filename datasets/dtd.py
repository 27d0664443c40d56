"""Describable Textures (DTD): ``dtd/images/<class>/<class>_NNNN.jpg``; class name = folder name."""
from engine import DATASET_REGISTRY

from .base import BenchmarkDataset, make_groups, split_by_ratio


@DATASET_REGISTRY.register()
class DescribableTextures(BenchmarkDataset):
    folder = "dtd"
    image_folder = "images"
    split_file = "split_zhou_DescribableTextures.json"
    template = "{} texture."
    doc_anchor = "describabletextures"

    def read_raw(self):
        """Classes = sorted folders; 50/20/30 per class."""
        return split_by_ratio(make_groups(self.image_dir))
