"""Zero-shot CLIP: the dataset's template (``ZeroshotCLIP``) or an ensemble (``ZeroshotCLIP2``)."""
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from trainers.base import ClipTrainer
from trainers.text_classifier import build_zero_shot_classifier


def add_zeroshot_config(cfg) -> None:
    from yacs.config import CfgNode as CN

    for node in ("ZeroshotCLIP", "ZeroshotCLIP2"):
        if node not in cfg.TRAINER:
            cfg.TRAINER[node] = CN()
            cfg.TRAINER[node].PREC = "fp16"


class CosineClassifier(nn.Module):
    """``logit_scale * norm(f) @ norm(W)^T`` for a fixed weight matrix (not saved: it is rebuilt from text)."""

    def __init__(self, weights, logit_scale: float):
        super().__init__()
        self.register_buffer("weights", F.normalize(weights, dim=-1), persistent=False)
        self.logit_scale = logit_scale

    def forward(self, features):
        return self.logit_scale * F.normalize(features, dim=-1) @ self.weights.t()


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(ClipTrainer):
    """CLIP's zero-shot classifier from the dataset's hand-written template. Nothing is trained."""

    CONFIG_NODE = "ZeroshotCLIP"
    TRAINABLE = ()
    TRAINING_FREE = True
    FEATURE_SPLITS = ("test",)  # nothing is fitted: encode only what is evaluated

    def build_head(self) -> nn.Module:
        weights = build_zero_shot_classifier(self.clip, self.classnames, self.templates)
        return CosineClassifier(weights, self.clip.logit_scale)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensemble, each embedding normalised before averaging, as CoOp's ZeroshotCLIP2
    (KaiyangZhou/CoOp@ff61507, ``trainers/zsclip.py``): on ImageNet its 7 "select" templates alone;
    on every other dataset (the ImageNet variants included) those 7 plus the dataset's own template."""

    CONFIG_NODE = "ZeroshotCLIP2"

    def dataset_templates(self):
        from datasets import IMAGENET_TEMPLATES_SELECT

        if self.cfg.DATASET.NAME == "ImageNet":
            return tuple(IMAGENET_TEMPLATES_SELECT)
        own = super().dataset_templates()
        return tuple(IMAGENET_TEMPLATES_SELECT) + tuple(t for t in own if t not in IMAGENET_TEMPLATES_SELECT)

    def build_head(self) -> nn.Module:
        weights = build_zero_shot_classifier(self.clip, self.classnames, self.templates, normalize_each=True)
        return CosineClassifier(weights, self.clip.logit_scale)


add_config = add_zeroshot_config  # marks a method module (trainers/__init__.py discovers it)
