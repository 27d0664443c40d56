"""Food-101: ``food-101/images/<class>/<id>.jpg``; class name = folder name."""
from engine import DATASET_REGISTRY

from .base import BenchmarkDataset, make_groups, split_by_ratio


@DATASET_REGISTRY.register()
class Food101(BenchmarkDataset):
    folder = "food-101"
    image_folder = "images"
    split_file = "split_zhou_Food101.json"
    template = "a photo of {}, a type of food."
    doc_anchor = "food101"

    def read_raw(self):
        """Classes = sorted folders; 50/20/30 per class."""
        return split_by_ratio(make_groups(self.image_dir))
