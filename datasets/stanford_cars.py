"""Stanford Cars: ``stanford_cars/{cars_train,cars_test}/NNNNN.jpg`` with the devkit's ``.mat`` annotations.

Split-file paths are relative to the dataset folder itself (``cars_train/00001.jpg``).
"""
import os

from engine import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, split_trainval


def car_classname(name: str) -> str:
    """'AM General Hummer SUV 2000' -> '2000 AM General Hummer SUV' (the year goes first)."""
    words = name.split(" ")
    return " ".join([words[-1]] + words[:-1])


@DATASET_REGISTRY.register()
class StanfordCars(BenchmarkDataset):
    folder = "stanford_cars"
    image_folder = ""
    split_file = "split_zhou_StanfordCars.json"
    raw_files = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_test_annos_withlabels.mat")
    template = "a photo of a {}."
    doc_anchor = "stanfordcars"

    def read_raw(self):
        """test = the labelled test annotations; train annotations split 80/20 per class into train/val."""
        from scipy.io import loadmat

        meta = loadmat(os.path.join(self.dataset_dir, "devkit", "cars_meta.mat"))["class_names"][0]
        names = [car_classname(str(entry[0])) for entry in meta]
        trainval = self._read_annos("cars_train", os.path.join("devkit", "cars_train_annos.mat"), names, loadmat)
        test = self._read_annos("cars_test", "cars_test_annos_withlabels.mat", names, loadmat)
        train, val = split_trainval(trainval, p_val=0.2)
        return train, val, test

    def _read_annos(self, image_folder, anno_file, names, loadmat):
        annos = loadmat(os.path.join(self.dataset_dir, anno_file))["annotations"][0]
        items = []
        for anno in annos:
            label = int(anno["class"][0, 0]) - 1
            items.append(Datum(impath=os.path.join(self.dataset_dir, image_folder, str(anno["fname"][0])),
                               label=label, classname=names[label]))
        return items
