"""The ten non-ImageNet benchmark datasets: each class declares its layout (``BenchmarkDataset``) and how
its split is built from the raw annotations when the split file is absent (``read_raw``).

Built splits: a folder-per-class dataset splits each class 50/20/30 into train/val/test; a dataset with an
official test list splits its train(val) list 80/20 per class into train/val.
"""
import os
import re
from typing import Dict, Tuple

from engine import DATASET_REGISTRY, Datum, read_json

from .base import BenchmarkDataset
from .splits import folder_items, group_by_label, list_dirs, read_lines, split_by_ratio, split_trainval


class FolderPerClass(BenchmarkDataset):
    """``<image_folder>/<class>/<image>``: classes = sorted folders minus ``ignored``, named by ``renames``."""

    ignored: Tuple[str, ...] = ()
    renames: Dict[str, str] = {}

    def read_raw(self):
        folders = [c for c in list_dirs(self.image_dir) if c not in self.ignored]
        return split_by_ratio(folder_items(os.path.join(self.image_dir, c), label, self.renames.get(c, c))
                              for label, c in enumerate(folders))


@DATASET_REGISTRY.register()
class Caltech101(FolderPerClass):
    """Caltech-101: ``caltech-101/101_ObjectCategories/<class>/image_NNNN.jpg``."""

    folder = "caltech-101"
    image_folder = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    ignored = ("BACKGROUND_Google", "Faces_easy")  # not object classes: clutter, a duplicate of Faces
    renames = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class DescribableTextures(FolderPerClass):
    """Describable Textures (DTD): ``dtd/images/<class>/<class>_NNNN.jpg``."""

    folder = "dtd"
    image_folder = "images"
    split_file = "split_zhou_DescribableTextures.json"
    template = "{} texture."


@DATASET_REGISTRY.register()
class EuroSAT(FolderPerClass):
    """EuroSAT (RGB): ``eurosat/2750/<Class>/<Class>_N.jpg``; folder names become descriptive phrases."""

    folder = "eurosat"
    image_folder = "2750"
    split_file = "split_zhou_EuroSAT.json"
    template = "a centered satellite photo of {}."
    renames = {
        "AnnualCrop": "Annual Crop Land", "Forest": "Forest", "HerbaceousVegetation": "Herbaceous Vegetation Land",
        "Highway": "Highway or Road", "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
        "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings", "River": "River",
        "SeaLake": "Sea or Lake",
    }


@DATASET_REGISTRY.register()
class Food101(FolderPerClass):
    """Food-101: ``food-101/images/<class>/<id>.jpg``."""

    folder = "food-101"
    image_folder = "images"
    split_file = "split_zhou_Food101.json"
    template = "a photo of {}, a type of food."


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    """Oxford Flowers-102: ``oxford_flowers/jpg/image_NNNNN.jpg``, ``imagelabels.mat``, ``cat_to_name.json``."""

    folder = "oxford_flowers"
    image_folder = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    raw_files = ("imagelabels.mat", "cat_to_name.json")
    template = "a photo of a {}, a type of flower."

    def read_raw(self):
        """``imagelabels.mat`` gives image i's label (1-based); classes in order of first appearance."""
        from scipy.io import loadmat

        labels = loadmat(os.path.join(self.dataset_dir, "imagelabels.mat"))["labels"][0]
        names = read_json(os.path.join(self.dataset_dir, "cat_to_name.json"))
        items = [Datum(impath=os.path.join(self.image_dir, f"image_{i + 1:05d}.jpg"), label=y - 1,
                       classname=names[str(y)]) for i, y in enumerate(int(label) for label in labels)]
        return split_by_ratio(group_by_label(items).values())


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    """FGVC-Aircraft (variant level): ``fgvc_aircraft/images/<id>.jpg``. No split JSON: the lists
    ``images_variant_{train,val,test}.txt`` are the split; labels are line indices in ``variants.txt``."""

    folder = "fgvc_aircraft"
    image_folder = "images"
    raw_files = ("variants.txt", "images_variant_train.txt", "images_variant_val.txt",
                 "images_variant_test.txt")
    template = "a photo of a {}, a type of aircraft."

    def read_raw(self):
        labels = {name: i for i, name in enumerate(read_lines(os.path.join(self.dataset_dir, "variants.txt")))}
        return tuple(self._read_list(f"images_variant_{split}.txt", labels) for split in ("train", "val", "test"))

    def _read_list(self, name, labels):
        """Lines ``<image id> <variant name, may contain spaces>``."""
        rows = (line.split(" ", 1) for line in read_lines(os.path.join(self.dataset_dir, name)))
        return [Datum(impath=os.path.join(self.image_dir, image_id + ".jpg"), label=labels[variant],
                      classname=variant) for image_id, variant in rows]


@DATASET_REGISTRY.register()
class OxfordPets(BenchmarkDataset):
    """Oxford-IIIT Pets: ``oxford_pets/images/<Breed>_<n>.jpg`` with ``annotations/{trainval,test}.txt``."""

    folder = "oxford_pets"
    image_folder = "images"
    split_file = "split_zhou_OxfordPets.json"
    raw_files = ("annotations/trainval.txt", "annotations/test.txt")
    template = "a photo of a {}, a type of pet."

    def read_raw(self):
        return (*split_trainval(self._read_list("trainval.txt")), self._read_list("test.txt"))

    def _read_list(self, name):
        """Lines ``<image stem> <class id 1..37> <species> <breed id>``; the breed is the stem minus ``_<n>``."""
        lines = read_lines(os.path.join(self.dataset_dir, "annotations", name))
        rows = (line.split()[:2] for line in lines if not line.startswith("#"))
        return [Datum(impath=os.path.join(self.image_dir, stem + ".jpg"), label=int(class_id) - 1,
                      classname=stem.rsplit("_", 1)[0].lower()) for stem, class_id in rows]


def car_classname(name: str) -> str:
    """'AM General Hummer SUV 2000' -> '2000 AM General Hummer SUV' (the year goes first)."""
    words = name.split(" ")
    return " ".join([words[-1]] + words[:-1])


@DATASET_REGISTRY.register()
class StanfordCars(BenchmarkDataset):
    """Stanford Cars: ``stanford_cars/{cars_train,cars_test}/NNNNN.jpg`` with the devkit's ``.mat``
    annotations. Split-file paths are relative to the dataset folder itself (``cars_train/00001.jpg``)."""

    folder = "stanford_cars"
    image_folder = ""
    split_file = "split_zhou_StanfordCars.json"
    raw_files = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_test_annos_withlabels.mat")

    def read_raw(self):
        """test = the labelled test annotations; the train annotations are train + val."""
        from scipy.io import loadmat

        def read_annos(image_folder, anno_file):
            annos = loadmat(os.path.join(self.dataset_dir, anno_file))["annotations"][0]
            rows = [(str(anno["fname"][0]), int(anno["class"][0, 0]) - 1) for anno in annos]
            return [Datum(impath=os.path.join(self.dataset_dir, image_folder, fname), label=label,
                          classname=names[label]) for fname, label in rows]

        meta = loadmat(os.path.join(self.dataset_dir, "devkit", "cars_meta.mat"))["class_names"][0]
        names = [car_classname(str(entry[0])) for entry in meta]
        trainval = read_annos("cars_train", os.path.join("devkit", "cars_train_annos.mat"))
        return (*split_trainval(trainval), read_annos("cars_test", "cars_test_annos_withlabels.mat"))


def scene_classname(path: str) -> str:
    """'a/apartment_building/outdoor' -> 'outdoor apartment_building': drop the letter, reverse the levels
    (qualifiers such as indoor/outdoor go first, as in CoOp's published split file)."""
    return " ".join(path.strip("/").split("/")[1:][::-1])


@DATASET_REGISTRY.register()
class SUN397(BenchmarkDataset):
    """SUN397: ``sun397/SUN397/<letter>/<scene>[/<sub>]/sun_*.jpg``, ``ClassName.txt``, the 01 partition."""

    folder = "sun397"
    image_folder = "SUN397"
    split_file = "split_zhou_SUN397.json"
    raw_files = ("ClassName.txt", "Training_01.txt", "Testing_01.txt")

    def read_raw(self):
        """Labels = line order of ClassName.txt; test = Testing_01; train + val = Training_01."""
        names = read_lines(os.path.join(self.dataset_dir, "ClassName.txt"))
        labels = {name.strip("/"): i for i, name in enumerate(names)}
        return (*split_trainval(self._read_list("Training_01.txt", labels)), self._read_list("Testing_01.txt", labels))

    def _read_list(self, name, labels):
        rels = [line.lstrip("/") for line in read_lines(os.path.join(self.dataset_dir, name))]
        return [Datum(impath=os.path.join(self.image_dir, rel), label=labels[os.path.dirname(rel)],
                      classname=scene_classname(os.path.dirname(rel))) for rel in rels if rel]


def action_classname(action: str) -> str:
    """'ApplyEyeMakeup' -> 'Apply_Eye_Makeup' (also the frame folder's name)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


@DATASET_REGISTRY.register()
class UCF101(BenchmarkDataset):
    """UCF101, one middle frame per video: ``ucf101/UCF-101-midframes/<Action_Name>/v_<Action>_gNN_cNN.jpg``."""

    folder = "ucf101"
    image_folder = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    raw_files = ("ucfTrainTestlist/classInd.txt", "ucfTrainTestlist/trainlist01.txt",
                 "ucfTrainTestlist/testlist01.txt")
    template = "a photo of a person doing {}."

    def read_raw(self):
        """Labels from classInd.txt; test = testlist01; train + val = trainlist01."""
        rows = (line.split() for line in read_lines(os.path.join(self.dataset_dir, "ucfTrainTestlist",
                                                                  "classInd.txt")))
        labels = {action: int(index) - 1 for index, action in rows}
        return (*split_trainval(self._read_list("trainlist01.txt", labels)), self._read_list("testlist01.txt", labels))

    def _read_list(self, name, labels):
        """Lines ``<Action>/v_<Action>_gNN_cNN.avi [label]``; the frame is the same name as ``.jpg``."""
        items = []
        for line in read_lines(os.path.join(self.dataset_dir, "ucfTrainTestlist", name)):
            action, video = line.split()[0].split("/")
            folder = action_classname(action)
            frame = os.path.join(self.image_dir, folder, os.path.splitext(video)[0] + ".jpg")
            items.append(Datum(impath=frame, label=labels[action], classname=folder))
        return items
