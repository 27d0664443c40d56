"""Caltech-101: ``caltech-101/101_ObjectCategories/<class>/image_NNNN.jpg``."""
from engine import DATASET_REGISTRY

from .base import BenchmarkDataset, make_groups, split_by_ratio

# Not object classes: the background clutter folder and a duplicate of "Faces".
IGNORED_FOLDERS = ("BACKGROUND_Google", "Faces_easy")
RENAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(BenchmarkDataset):
    folder = "caltech-101"
    image_folder = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    template = "a photo of a {}."
    doc_anchor = "caltech101"

    def read_raw(self):
        """Classes = sorted folders (minus the ignored ones); 50/20/30 per class."""
        return split_by_ratio(make_groups(self.image_dir, IGNORED_FOLDERS, lambda c: RENAMES.get(c, c)))
