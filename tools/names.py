"""One naming scheme for datasets and methods, shared by the grid driver and the result tools.

Datasets have three names: the config name used on the command line and in output folders
(``caltech101``), the ``DATASET.NAME`` written into ``metrics.json`` (``Caltech101``) and a short
column label (``Cal``). Methods are named by their trainer (``TRAINER.NAME``); ``TaskRes*`` is
TaskRes run from an enhanced base. A method's display name, table position and shot-freeness are declared
on its trainer class, in its own module (``declared_names``); this module holds no per-method entry.
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

_MODIFIED = " [modified "


def modified_label(method: str, variant: str) -> str:
    """The name a modified run (one that differs from its recipe) carries in tables and plots."""
    return f"{method}{_MODIFIED}{variant}]"


def base_method(method: str) -> str:
    """``TaskRes [modified 1a2b3c4d]`` -> ``TaskRes``."""
    return method.split(_MODIFIED, 1)[0]


_DECLARED: Optional[Dict[str, Tuple[str, bool]]] = None


def declared_names() -> Dict[str, Tuple[str, bool]]:
    """Result name -> (display name, shot-free), in table order, as the methods declare them (``SPEC``, read with
    ``trainers.method_spec``): ``label``, ``variants`` (other result names the trainer makes, e.g. ``TaskRes*``,
    placed right after it), ``shot_free``; ordered by ``table_order`` (the paper's methods), then the others in
    discovery order.

    Read once, on first use (it imports ``trainers``, hence torch). A broken method module stops here with its
    one-line error: a report never silently names methods otherwise.
    """
    global _DECLARED
    if _DECLARED is None:
        import trainers

        specs = [(name, trainers.method_spec(name)) for name in trainers.declared_methods()]
        ordered = sorted(enumerate(specs), key=lambda ns: (ns[1][1].table_order is None, ns[1][1].table_order or 0,
                                                           ns[0]))
        _DECLARED = {}
        for _, (name, spec) in ordered:
            _DECLARED[name] = (spec.label or name, spec.shot_free)
            for variant in spec.variants:
                _DECLARED.setdefault(variant.name, (variant.label, spec.shot_free))
    return _DECLARED


def selects_on_val(method: str) -> bool:
    """Whether the method chooses hyper-parameters or epochs on validation data (its declared ``selects_on_val``);
    unknown names (``TaskRes*``, published-only methods) do not."""
    import trainers

    try:
        return trainers.method_spec(base_method(method)).selects_on_val
    except trainers.UnknownMethodError:
        return False


class _ShotFree:
    """The result names whose value does not depend on the number of shots (``shot_free`` declared), modified
    runs' labels included; read lazily so that importing this module does not import torch."""

    def __contains__(self, method) -> bool:
        if not isinstance(method, str):
            return False
        entry = declared_names().get(base_method(method))
        return bool(entry and entry[1])

    def __iter__(self):
        return iter([m for m, (_, free) in declared_names().items() if free])


# Methods whose result does not depend on the number of shots: their published value (stored with
# shots 0) stands beside ours at every shot count.
SHOT_FREE_METHODS = _ShotFree()


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


def method_label(method: str) -> str:
    """The display name a method declares (``LABEL``); unknown names (published-only rows such as ``PLOT++``,
    modified runs' labels) print as they are."""
    entry = declared_names().get(method)
    return entry[0] if entry else method


def method_order(method: str) -> Tuple[int, str]:
    """Sort key: declared methods in table order (the paper's first), unknown ones last, alphabetically."""
    order = list(declared_names())
    return (order.index(method), method) if method in order else (len(order), method)


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
