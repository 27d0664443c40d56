"""ZS-LP (Silva-Rodriguez et al., CVPR 2024): a linear probe initialised with CLIP's zero-shot prototypes.

The class prototypes ``W`` start as the zero-shot text embeddings ``t`` (mean of the unnormalised prompt
embeddings; ImageNet: its 7 select templates plus its own, other datasets their own template; class
names as the dataset gives them) and are all trained; logits are ``logit_scale * norm(f) @ norm(W)^T``.
The published setting is fixed for every task — SGD lr 0.1, batch 256, 300 epochs, cosine — so no
validation set is used (jusiro/CLAP@dbdf409 ``trainers/adapters.py``: ``AdapterMethod`` with INIT ``ZS``,
``CustomCLIP.forward_lp``; ``configs/trainers/SGD_lr1e-1_B256_ep300.yaml``).

Training views: the original encodes 20 augmented views of each training image once and, each epoch,
draws ``len(train loader)`` batches from the shuffled pool of all views; here the 20 views are cached and
epoch ``e`` trains on view ``e % 20`` of every image (``TRAIN_VIEWS``), the project's feature-cache
protocol. Same views and number of steps per epoch, a different mixing of views within an epoch.

This module is also the smallest example of a method: config defaults (``add_config``), trainable
parameters (``TRAINABLE``), head (``build_head``), display name (``LABEL``), recipe (``RECIPE_CONFIG``,
``recipe``); ``import trainers`` finds it.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from trainers.base import ClipTrainer
from trainers.text_classifier import build_zero_shot_classifier


def add_config(cfg) -> None:
    from yacs.config import CfgNode as CN

    if "ZSLP" not in cfg.TRAINER:
        cfg.TRAINER.ZSLP = CN()
        cfg.TRAINER.ZSLP.PREC = "fp16"


class PrototypeProbe(nn.Module):
    """Trainable class prototypes, initialised at the zero-shot ones, used as a cosine classifier."""

    def __init__(self, text_features: torch.Tensor, logit_scale: float):
        super().__init__()
        base = text_features.float()
        self.prototypes = nn.Parameter(base.clone())
        self.register_buffer("base", base.clone(), persistent=False)  # the zero-shot prototypes (CLAP's anchor)
        self.logit_scale = float(logit_scale)

    def logits(self, features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * F.normalize(features.float(), dim=-1) @ F.normalize(prototypes, dim=-1).t()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits(features, self.prototypes)


def original_templates(dataset: str, own: Tuple[str, ...]) -> Tuple[str, ...]:
    """ImageNet: the 7 select templates plus its own; every other dataset: its own (as the public code)."""
    if dataset != "ImageNet":
        return tuple(own)
    from datasets import IMAGENET_TEMPLATES_SELECT

    return tuple(IMAGENET_TEMPLATES_SELECT) + tuple(t for t in own if t not in IMAGENET_TEMPLATES_SELECT)


@TRAINER_REGISTRY.register()
class ZSLP(ClipTrainer):
    """Zero-shot-initialised linear probe; the prototypes are the only trained parameters."""

    CONFIG_NODE = "ZSLP"
    CHECKPOINT_NAME = "prototypes"
    TRAINABLE = ("prototypes",)
    TRAIN_VIEWS = 20
    LABEL = "ZS-LP"
    RECIPE_CONFIG = "configs/trainers/CLAP/rn50.yaml"

    @staticmethod
    def recipe(dataset: str, shots: int) -> dict:
        # One fixed setting for every dataset and shot count (the config file holds it).
        return {"OPTIM.LR": 0.1, "OPTIM.MAX_EPOCH": 300}

    def dataset_templates(self):
        return original_templates(self.cfg.DATASET.NAME, super().dataset_templates())

    def build_head(self) -> nn.Module:
        text = build_zero_shot_classifier(self.clip, self.classnames, self.templates, clean=False)
        return PrototypeProbe(text, self.clip.logit_scale)
