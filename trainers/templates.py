"""The prompt-template policy, in one place: which templates a method averages on which dataset.

Why one module: the public codes disagree on ImageNet (TaskRes and CLAP average ImageNet's 7 "select"
templates *plus* its own "a photo of a {}."; CoOp's ZeroshotCLIP2 and Tip-Adapter use the 7 alone; CoOp's
ZeroshotCLIP2 adds the 7 to every other dataset's own template), and on whether the ImageNet variants
count as ImageNet. A method names its policy here instead of writing the rule again; templates are
immutable tuples, never a list a call can extend (the original TaskRes appended to a module-level list).
Class names (raw, or cleaned ``_`` -> `` ``) are the text classifier's ``clean`` argument.
"""
from typing import Tuple

OWN = "own"                # the dataset's one hand-written template (datasets.dataset_templates)
SELECT = "select"          # ImageNet's 7 select templates
SELECT_OWN = "select+own"  # the 7, then the dataset's own unless it is one of them
POLICIES = (OWN, SELECT, SELECT_OWN)

# ImageNet and its test-only variants (same classes, or a WordNet-id subset of them).
IMAGENET_FAMILY: Tuple[str, ...] = ("ImageNet", "ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR")
IMAGENET_ONLY: Tuple[str, ...] = ("ImageNet",)


def imagenet_select() -> Tuple[str, ...]:
    from datasets import IMAGENET_TEMPLATES_SELECT

    return tuple(IMAGENET_TEMPLATES_SELECT)


def templates_for(dataset: str, imagenet: str = OWN, others: str = OWN,
                  imagenet_names: Tuple[str, ...] = IMAGENET_FAMILY) -> Tuple[str, ...]:
    """The templates of ``dataset`` (a ``DATASET.NAME``): policy ``imagenet`` for the names in
    ``imagenet_names``, ``others`` for every other dataset."""
    from datasets import dataset_templates

    own = tuple(dataset_templates(dataset))
    policy = imagenet if dataset in imagenet_names else others
    if policy == OWN:
        return own
    select = imagenet_select()
    if policy == SELECT:
        return select
    if policy == SELECT_OWN:
        return select + tuple(t for t in own if t not in select)
    raise ValueError(f"Unknown template policy {policy!r}; valid: {', '.join(POLICIES)}")
