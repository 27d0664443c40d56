"""SUN397: ``sun397/SUN397/<letter>/<scene>[/<sub>]/sun_*.jpg`` with ``ClassName.txt`` and the 01 partition."""
import os

from engine import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, split_trainval


def scene_classname(path: str) -> str:
    """'a/apartment_building/outdoor' -> 'outdoor apartment_building': drop the letter, reverse the levels.

    Reversing puts qualifiers such as indoor/outdoor first, as in CoOp's published split file.
    """
    return " ".join(path.strip("/").split("/")[1:][::-1])


@DATASET_REGISTRY.register()
class SUN397(BenchmarkDataset):
    folder = "sun397"
    image_folder = "SUN397"
    split_file = "split_zhou_SUN397.json"
    raw_files = ("ClassName.txt", "Training_01.txt", "Testing_01.txt")
    template = "a photo of a {}."
    doc_anchor = "sun397"

    def read_raw(self):
        """Labels = line order of ClassName.txt; test = Testing_01; Training_01 split 80/20 per class."""
        with open(os.path.join(self.dataset_dir, "ClassName.txt")) as f:
            labels = {line.strip().strip("/"): i for i, line in enumerate(x for x in f if x.strip())}
        trainval = self._read_list("Training_01.txt", labels)
        train, val = split_trainval(trainval, p_val=0.2)
        return train, val, self._read_list("Testing_01.txt", labels)

    def _read_list(self, name, labels):
        items = []
        with open(os.path.join(self.dataset_dir, name)) as f:
            for line in f:
                rel = line.strip().lstrip("/")
                if not rel:
                    continue
                scene = os.path.dirname(rel)
                items.append(Datum(impath=os.path.join(self.image_dir, rel), label=labels[scene],
                                   classname=scene_classname(scene)))
        return items
