"""Oxford Flowers-102: ``oxford_flowers/jpg/image_NNNNN.jpg``, ``imagelabels.mat`` and ``cat_to_name.json``."""
import json
import os

from engine import DATASET_REGISTRY

from .base import BenchmarkDataset, split_by_ratio


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    folder = "oxford_flowers"
    image_folder = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    raw_files = ("imagelabels.mat", "cat_to_name.json")
    template = "a photo of a {}, a type of flower."
    doc_anchor = "oxfordflowers"

    def read_raw(self):
        """``imagelabels.mat`` gives image i's label (1-based); classes in order of first appearance; 50/20/30."""
        from scipy.io import loadmat

        labels = loadmat(os.path.join(self.dataset_dir, "imagelabels.mat"))["labels"][0]
        with open(os.path.join(self.dataset_dir, "cat_to_name.json")) as f:
            names = json.load(f)
        by_label = {}
        for i, label in enumerate(labels):
            by_label.setdefault(int(label), []).append(os.path.join(self.image_dir, f"image_{i + 1:05d}.jpg"))
        return split_by_ratio((y - 1, names[str(y)], paths) for y, paths in by_label.items())
