"""One naming scheme for datasets and methods, shared by the grid driver and the result tools.

Datasets have three names: the config name used on the command line and in output folders
(``caltech101``), the ``DATASET.NAME`` written into ``metrics.json`` (``Caltech101``) and a short
column label (``Cal``). Methods are named by their trainer (``TRAINER.NAME``); ``TaskRes*`` is
TaskRes run from an enhanced base.
"""
import os
from typing import Dict, Optional, Tuple

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
NAME_TO_CONFIG: Dict[str, str] = {n: c for c, n in CONFIG_TO_NAME.items()}
NAME_TO_LABEL: Dict[str, str] = {n: lab for _, n, lab in FEWSHOT_DATASETS + VARIANT_DATASETS}
FEWSHOT_NAMES: Tuple[str, ...] = tuple(n for _, n, _ in FEWSHOT_DATASETS)
VARIANT_NAMES: Tuple[str, ...] = tuple(n for _, n, _ in VARIANT_DATASETS)

# Trainer name -> name printed in tables and legends, in the order tables list methods.
METHOD_LABELS: Dict[str, str] = {
    "ZeroshotCLIP": "Zero-shot CLIP",
    "ZeroshotCLIP2": "Zero-shot CLIP (ensemble)",
    "LinearProbeCLIP": "Linear probe",
    "CoOp": "CoOp",
    "CLIP_Adapter": "CLIP-Adapter",
    "TipAdapter": "Tip-Adapter",
    "TipAdapterF": "Tip-Adapter-F",
    "TaskRes": "TaskRes",
    "TaskRes*": "TaskRes*",
}
_MODIFIED = " [modified "


def modified_label(method: str, variant: str) -> str:
    """The name a modified run (one that differs from its recipe) carries in tables and plots."""
    return f"{method}{_MODIFIED}{variant}]"


def base_method(method: str) -> str:
    """``TaskRes [modified 1a2b3c4d]`` -> ``TaskRes``."""
    return method.split(_MODIFIED, 1)[0]


class _Methods(frozenset):
    """A set of trainer names that also holds their modified runs' labels."""

    def __contains__(self, method) -> bool:
        return frozenset.__contains__(self, base_method(method) if isinstance(method, str) else method)


# Methods whose result does not depend on the number of shots: their published value (stored with
# shots 0) stands beside ours at every shot count.
SHOT_FREE_METHODS = _Methods({"ZeroshotCLIP", "ZeroshotCLIP2"})


def dataset_name(name: str) -> str:
    """``DATASET.NAME`` for a config name or a ``DATASET.NAME`` (unknown names pass through)."""
    return CONFIG_TO_NAME.get(name, name)


def dataset_label(name: str) -> str:
    return NAME_TO_LABEL.get(dataset_name(name), name)


def config_name(name: str) -> Optional[str]:
    """Config name (``caltech101``) for a ``DATASET.NAME`` or a config name; None if unknown."""
    if name in CONFIG_TO_NAME:
        return name
    return NAME_TO_CONFIG.get(name)


_DECLARED_LABELS: Optional[Dict[str, str]] = None


def declared_labels() -> Dict[str, str]:
    """Display names that methods declare in their own modules (``LABEL``), in discovery order.

    Read only when a name is not in ``METHOD_LABELS`` (it imports ``trainers``, hence torch); a broken
    method module must not stop a report, so a failed import leaves the trainer names as they are.
    """
    global _DECLARED_LABELS
    if _DECLARED_LABELS is None:
        try:
            import trainers

            _DECLARED_LABELS = {name: cls.LABEL or name for name, cls in trainers.declared_methods().items()
                                if name not in METHOD_LABELS}
        except Exception as err:  # noqa: BLE001  (any import failure: fall back to trainer names)
            import logging

            logging.getLogger(__name__).warning("Method display names: trainers could not be imported (%s)", err)
            _DECLARED_LABELS = {}
    return _DECLARED_LABELS


def method_label(method: str) -> str:
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    return declared_labels().get(method, method)


def method_order(method: str) -> Tuple[int, str]:
    """Sort key: the paper's order, then declared methods (discovery order), unknown ones last, alphabetically."""
    order = list(METHOD_LABELS)
    if method in order:
        return (order.index(method), method)
    declared = list(declared_labels())
    if method in declared:
        return (len(order) + declared.index(method), method)
    return (len(order) + len(declared), method)


def backbone_tag(backbone: str) -> str:
    """Folder-safe backbone name used in run folders: ``RN50`` -> ``rn50``, ``ViT-B/16`` -> ``vit_b16``,
    ``/path/to/my-clip.pt`` -> ``my_clip``, ``ViT-B-16:openai`` -> ``vit_b_16_openai``.

    A checkpoint file (an existing file, or a name ending in ``.pt``/``.pth``) is named by its base name.
    """
    name = backbone
    if os.path.isfile(name) or name.endswith((".pt", ".pth")):
        name = os.path.basename(name)
        for ext in (".pth", ".pt"):
            if name.endswith(ext):
                name = name[: -len(ext)]
                break
    name = name.lower().replace("/", "")
    for ch in ":@-":
        name = name.replace(ch, "_")
    while "__" in name:
        name = name.replace("__", "_")
    return name
