"""One naming scheme for datasets and methods, shared by the grid driver and the result tools.

Datasets have three names: the config name used on the command line and in output folders
(``caltech101``), the ``DATASET.NAME`` written into ``metrics.json`` (``Caltech101``) and a short
column label (``Cal``). Methods name themselves: each run's ``metrics.json`` carries its method's display name
and table position (``tools.methods``); this module holds no per-method entry. Pure data and string functions:
importing it imports neither torch nor any part of the training code.
"""
import os
import re
from typing import Dict, Tuple

# (config name, DATASET.NAME, column label), in the paper's column order.
FEWSHOT_DATASETS: Tuple[Tuple[str, str, str], ...] = (
    ("imagenet", "ImageNet", "IN"),
    ("caltech101", "Caltech101", "Cal"),
    ("dtd", "DescribableTextures", "DTD"),
    ("eurosat", "EuroSAT", "ESAT"),
    ("fgvc_aircraft", "FGVCAircraft", "FGVC"),
    ("oxford_flowers", "OxfordFlowers", "Flw"),
    ("food101", "Food101", "Food"),
    ("oxford_pets", "OxfordPets", "Pets"),
    ("stanford_cars", "StanfordCars", "Cars"),
    ("sun397", "SUN397", "SUN"),
    ("ucf101", "UCF101", "UCF"),
)
VARIANT_DATASETS: Tuple[Tuple[str, str, str], ...] = (
    ("imagenetv2", "ImageNetV2", "-V2"),
    ("imagenet_sketch", "ImageNetSketch", "-Sketch"),
    ("imagenet_a", "ImageNetA", "-A"),
    ("imagenet_r", "ImageNetR", "-R"),
)
OPENAI_BACKBONES: Tuple[str, ...] = ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16",
                                     "ViT-L/14", "ViT-L/14@336px")
PAPER_SHOTS: Tuple[int, ...] = (1, 2, 4, 8, 16)
PAPER_SEEDS: Tuple[int, ...] = (1, 2, 3)
AVERAGE = "Average"  # the pseudo-dataset of 11-dataset averages

CONFIG_TO_NAME: Dict[str, str] = {c: n for c, n, _ in FEWSHOT_DATASETS + VARIANT_DATASETS}
NAME_TO_LABEL: Dict[str, str] = {n: lab for _, n, lab in FEWSHOT_DATASETS + VARIANT_DATASETS}
FEWSHOT_NAMES: Tuple[str, ...] = tuple(n for _, n, _ in FEWSHOT_DATASETS)
VARIANT_NAMES: Tuple[str, ...] = tuple(n for _, n, _ in VARIANT_DATASETS)

# The selection tracks (``DATASET.TRACK``; their names reach tools through ``metrics.json``), in report order:
# (name, title, what the track allows). A test checks that this covers ``datasets.TRACKS``.
TRACKS: Tuple[Tuple[str, str, str], ...] = (
    ("paper", "paper protocol",
     "each method selects on exactly what its original selected on (validation data), never on the test set"),
    ("fewshot_val", "few-shot validation",
     "a method that selects reads min(K, 4) validation images per class, nothing more"),
    ("valfree", "validation-free",
     "no run reads validation data; a method that selects uses one fixed setting for every dataset and shot count"),
)
TRACK_NAMES: Tuple[str, ...] = tuple(t for t, _, _ in TRACKS)
TRACK_TITLES: Dict[str, str] = {t: title for t, title, _ in TRACKS}
TRACK_RULES: Dict[str, str] = {t: rule for t, _, rule in TRACKS}


def dataset_name(name: str) -> str:
    """``DATASET.NAME`` for a config name or a ``DATASET.NAME`` (unknown names pass through)."""
    return CONFIG_TO_NAME.get(name, name)


def dataset_label(name: str) -> str:
    return NAME_TO_LABEL.get(dataset_name(name), name)


def backbone_tag(backbone: str) -> str:
    """Folder-safe backbone name used in run folders: ``RN50`` -> ``rn50``, ``ViT-B/16`` -> ``vit_b16``,
    ``/path/to/my-clip.pt`` -> ``my_clip``, ``ViT-B-16:openai`` -> ``vit_b_16_openai``.

    A checkpoint file (an existing file, or a name ending in ``.pt``/``.pth``) is named by its base name
    without extension, as ``bookkeeping.folders.backbone_tag`` names it.
    """
    name = backbone
    if os.path.isfile(name) or name.endswith((".pt", ".pth")):
        name = os.path.splitext(os.path.basename(name))[0]
    return re.sub(r"[:@_-]+", "_", name.lower().replace("/", ""))
