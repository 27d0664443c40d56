"""Oxford-IIIT Pets: ``oxford_pets/images/<Breed>_<n>.jpg`` with ``annotations/{trainval,test}.txt``."""
import os

from engine import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, split_trainval


@DATASET_REGISTRY.register()
class OxfordPets(BenchmarkDataset):
    folder = "oxford_pets"
    image_folder = "images"
    split_file = "split_zhou_OxfordPets.json"
    raw_files = ("annotations/trainval.txt", "annotations/test.txt")
    template = "a photo of a {}, a type of pet."
    doc_anchor = "oxfordpets"

    def read_raw(self):
        """test = test.txt; trainval.txt split 80/20 per class into train/val."""
        train, val = split_trainval(self._read_list("trainval.txt"), p_val=0.2)
        return train, val, self._read_list("test.txt")

    def _read_list(self, name):
        """Lines ``<image stem> <class id 1..37> <species> <breed id>``; breed = stem minus ``_<n>``, lower-cased."""
        items = []
        with open(os.path.join(self.dataset_dir, "annotations", name)) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                stem, class_id = line.split()[:2]
                breed = stem.rsplit("_", 1)[0].lower()
                items.append(Datum(impath=os.path.join(self.image_dir, stem + ".jpg"), label=int(class_id) - 1,
                                   classname=breed))
        return items
