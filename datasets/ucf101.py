"""UCF101 (one middle frame per video): ``ucf101/UCF-101-midframes/<Action_Name>/v_<Action>_gNN_cNN.jpg``."""
import os
import re

from engine import DATASET_REGISTRY, Datum

from .base import BenchmarkDataset, split_trainval


def action_classname(action: str) -> str:
    """'ApplyEyeMakeup' -> 'Apply_Eye_Makeup' (also the frame folder's name)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


@DATASET_REGISTRY.register()
class UCF101(BenchmarkDataset):
    folder = "ucf101"
    image_folder = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    raw_files = ("ucfTrainTestlist/classInd.txt", "ucfTrainTestlist/trainlist01.txt",
                 "ucfTrainTestlist/testlist01.txt")
    template = "a photo of a person doing {}."
    doc_anchor = "ucf101"

    def read_raw(self):
        """Labels from classInd.txt; test = testlist01; trainlist01 split 80/20 per class."""
        labels = {}
        with open(os.path.join(self.dataset_dir, "ucfTrainTestlist", "classInd.txt")) as f:
            for line in f:
                if line.strip():
                    index, action = line.split()
                    labels[action] = int(index) - 1
        trainval = self._read_list("trainlist01.txt", labels)
        train, val = split_trainval(trainval, p_val=0.2)
        return train, val, self._read_list("testlist01.txt", labels)

    def _read_list(self, name, labels):
        """Lines ``<Action>/v_<Action>_gNN_cNN.avi [label]``; the frame is the same name as ``.jpg``."""
        items = []
        with open(os.path.join(self.dataset_dir, "ucfTrainTestlist", name)) as f:
            for line in f:
                if not line.strip():
                    continue
                action, video = line.split()[0].split("/")
                folder = action_classname(action)
                frame = os.path.splitext(video)[0] + ".jpg"
                items.append(Datum(impath=os.path.join(self.image_dir, folder, frame), label=labels[action],
                                   classname=folder))
        return items
