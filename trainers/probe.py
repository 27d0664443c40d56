"""The zero-shot-initialised prototype probe that ZS-LP and CLAP share (Silva-Rodriguez et al., CVPR 2024).

Why a shared module: CLAP is ZS-LP plus a loss term, and a method module never imports another method
module, so the head, the template policy, the training views and the published setting live here once
and ``trainers/zslp.py`` and ``trainers/clap.py`` each declare their own trainer on top. Not a method
module (no ``add_config``): nothing here is registered.

The class prototypes ``W`` start as the zero-shot text embeddings ``t`` (mean of the unnormalised prompt
embeddings; ImageNet: its 7 select templates plus its own, other datasets their own template; class
names as the dataset gives them) and are all trained; logits are ``logit_scale * norm(f) @ norm(W)^T``.
The published setting is one for every task — SGD lr 0.1, batch 256, 300 epochs, cosine — so no
validation set is used (jusiro/CLAP@dbdf409 ``trainers/adapters.py``: ``AdapterMethod`` with INIT ``ZS``,
``CustomCLIP.forward_lp``; ``configs/trainers/SGD_lr1e-1_B256_ep300.yaml``).

Training views: the original encodes 20 augmented views of each training image once and, each epoch,
draws ``len(train loader)`` batches from the shuffled pool of all views; here the 20 views are cached and
epoch ``e`` trains on view ``e % 20`` of every image (a pool of 20: ``PROBE``'s cache request), the project's feature-cache
protocol. Same views and number of steps per epoch, a different mixing of views within an epoch.
"""
from typing import Tuple

import torch
from torch import nn

from trainers.base import ClipTrainer
from trainers.heads import cosine_logits
from trainers.spec import CacheRequest
from trainers.templates import IMAGENET_ONLY, OWN, SELECT_OWN, templates_for
from trainers.text_classifier import build_zero_shot_classifier


class PrototypeProbe(nn.Module):
    """Trainable class prototypes, initialised at the zero-shot ones, used as a cosine classifier."""

    def __init__(self, text_features: torch.Tensor, logit_scale: float):
        super().__init__()
        base = text_features.float()
        self.prototypes = nn.Parameter(base.clone())
        self.register_buffer("base", base.clone(), persistent=False)  # the zero-shot prototypes (CLAP's anchor)
        self.logit_scale = float(logit_scale)

    def logits(self, features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, prototypes, self.logit_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits(features, self.prototypes)


def original_templates(dataset: str) -> Tuple[str, ...]:
    """ImageNet (not its variants): the 7 select templates plus its own; every other dataset: its own
    (jusiro/CLAP ``adapters.py`` ``_get_base_text_features``)."""
    return templates_for(dataset, imagenet=SELECT_OWN, others=OWN, imagenet_names=IMAGENET_ONLY)


def probe_recipe(dataset: str, shots: int) -> dict:
    """The published setting, the same for ZS-LP and CLAP, every dataset and shot count (the file holds SGD,
    batch 256 and the cosine schedule)."""
    return {"OPTIM.LR": 0.1, "OPTIM.MAX_EPOCH": 300}


# What ZS-LP and CLAP declare alike (each adds its config node and label: ``declare(**PROBE, ...)``).
PROBE = dict(checkpoint_name="prototypes", trainable=("prototypes",), cache=CacheRequest(train_views="pool", pool=20),
             recipe_config="configs/trainers/CLAP/rn50.yaml", recipe=probe_recipe)


class PrototypeProbeTrainer(ClipTrainer):
    """Zero-shot-initialised linear probe; the prototypes are the only trained parameters. Not registered:
    ZS-LP and CLAP subclass it, each declaring ``SPEC = declare(**PROBE, config_node=..., label=...)``."""

    def dataset_templates(self):
        return original_templates(self.cfg.DATASET.NAME)

    def build_head(self) -> nn.Module:
        text = build_zero_shot_classifier(self.clip, self.classnames, self.templates, clean=False)
        return PrototypeProbe(text, self.clip.logit_scale)
