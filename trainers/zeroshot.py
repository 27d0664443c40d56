"""Zero-shot CLIP: the dataset's template (``ZeroshotCLIP``) or an ensemble (``ZeroshotCLIP2``).

Both are shot-free (``shot_free``): no training image is used, so the grid runs them once per dataset
and the launcher ``scripts/zeroshot/main.sh`` reuses one run for every SHOTS (``<backbone>_zeroshot``).
"""
from torch import nn

from engine import TRAINER_REGISTRY
from trainers.base import ClipTrainer, add_method_config
from trainers.heads import CosineClassifier
from trainers.spec import CacheRequest, declare
from trainers.templates import IMAGENET_ONLY, SELECT, SELECT_OWN


def add_config(cfg) -> None:
    """Both trainers' config nodes; defining ``add_config`` marks a method module (trainers/__init__.py)."""
    for node in ("ZeroshotCLIP", "ZeroshotCLIP2"):
        add_method_config(cfg, node, PREC="fp16")


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(ClipTrainer):
    """CLIP's zero-shot classifier from the dataset's hand-written template. Nothing is trained."""

    SPEC = declare(
        config_node="ZeroshotCLIP", training_free=True, shot_free=True, label="Zero-shot CLIP", table_order=10,
        cache=CacheRequest(splits=("test",), train_views="none"),  # nothing is fitted: encode only what is evaluated
        # Nothing is trained: the recipe is the data and test settings of TaskRes's config (one run per dataset,
        # first seed, 1-shot data reading), the folder and config scripts/zeroshot/main.sh uses.
        recipe_config="configs/trainers/TaskRes/rn50.yaml")
    normalize_each = False  # each template's embedding normalised before averaging (ZeroshotCLIP2)

    def build_head(self) -> nn.Module:
        return CosineClassifier(self.text_classifier(normalize_each=self.normalize_each), self.clip.logit_scale)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensemble, each embedding normalised before averaging, as CoOp's ZeroshotCLIP2
    (KaiyangZhou/CoOp@ff61507, ``trainers/zsclip.py``): on ImageNet its 7 "select" templates alone;
    on every other dataset (the ImageNet variants included) those 7 plus the dataset's own template."""

    SPEC = ZeroshotCLIP.SPEC.derive(config_node="ZeroshotCLIP2", label="Zero-shot CLIP (ensemble)", table_order=11)
    template_policy = dict(imagenet=SELECT, others=SELECT_OWN, imagenet_names=IMAGENET_ONLY)
    normalize_each = True
