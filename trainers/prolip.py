"""ProLIP (Fahes et al., 2025): fine-tune only the image encoder's final projection, pulled towards its start.

Everything below the projection is frozen, so the pre-projection features of each augmented view are cached
and an epoch is a few matrix products. Public code astra-vision/ProLIP@b43e795 ``methods/ProLIP.py``; loss,
recipe and deviations: docs/methods/prolip.md.
"""
import logging

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from trainers.base import ClipTrainer, add_method_config
from trainers.heads import cosine_logits
from trainers.spec import CacheRequest, declare
from trainers.templates import IMAGENET_FAMILY, OWN, SELECT

logger = logging.getLogger(__name__)

# The original multiplies the cosines by a fixed 100 (CLIP's fp16 logit_scale gives exp(4.6055) = 100.03).
LOGIT_SCALE = 100.0


def regularization_weight(shots: int, rule: str = "1/N", value: float = 0.0) -> float:
    """``lambda`` for ``shots`` training images per class: ``1/N`` (the published setting), ``1/N2`` or a constant."""
    if rule == "1/N":
        return 1.0 / shots
    if rule == "1/N2":
        return 1.0 / shots ** 2
    if rule == "const":
        return float(value)
    raise ValueError(f"TRAINER.PROLIP.LAMBDA_RULE must be one of 1/N, 1/N2, const, not {rule!r}")


def projected_logits(pre: torch.Tensor, weight: torch.Tensor, bias, text_normed: torch.Tensor,
                     logit_scale: float) -> torch.Tensor:
    """Cosine logits of pre-projection features ``pre`` ``[B, width]`` projected by ``weight`` ``[embed, width]``
    (+ ``bias``), against unit text rows ``text_normed`` ``[C, embed]``."""
    return cosine_logits(F.linear(pre.float(), weight, bias), text_normed, logit_scale, weights_normalized=True)


def prolip_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, weight0: torch.Tensor,
                lam: float) -> torch.Tensor:
    """Mean cross-entropy plus ``lam`` times the squared Frobenius distance of ``weight`` to ``weight0``."""
    return F.cross_entropy(logits, labels) + lam * (weight - weight0).pow(2).sum()


class ProjectionHead(nn.Module):
    """The trainable projection ``weight`` (initialised to ``W0``) on pre-projection features + the frozen classifier.

    ``weight0`` (``W0``), ``bias`` and the text rows are rebuilt from the backbone and the class names, so the
    checkpoint holds ``weight`` alone (class-agnostic: it evaluates on other classes).
    """

    def __init__(self, weight0: torch.Tensor, bias, text_features: torch.Tensor, logit_scale: float, lam: float):
        super().__init__()
        self.weight = nn.Parameter(weight0.detach().float().clone())
        self.register_buffer("weight0", weight0.detach().float().clone(), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone(), persistent=False)
        self.register_buffer("text_features", F.normalize(text_features.float(), dim=-1), persistent=False)
        self.logit_scale = float(logit_scale)
        self.lam = float(lam)

    def forward(self, pre: torch.Tensor) -> torch.Tensor:
        return projected_logits(pre, self.weight, self.bias, self.text_features, self.logit_scale)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return prolip_loss(logits, labels, self.weight, self.weight0, self.lam)


def build_optimization(params, lr: float, epochs: int, eps: float = 1e-4):
    """The original's optimizer: Adam (``eps`` 1e-4, no weight decay) with a cosine schedule over ``epochs``
    steps, stepped once per epoch, no warm-up."""
    optim = torch.optim.Adam(params, lr=lr, eps=eps)
    return optim, torch.optim.lr_scheduler.CosineAnnealingLR(optim, int(epochs))


def add_config(cfg) -> None:
    add_method_config(cfg, "PROLIP", PREC="fp16",
                      LAMBDA_RULE="1/N",  # "1/N" (published), "1/N2", or "const" (then LAMBDA)
                      LAMBDA=0.0,
                      ADAM_EPS=1e-4)      # the original's Adam epsilon


def prolip_recipe(dataset: str, shots: int) -> dict:
    """The validation-free setting, the same for every dataset and shot count (lambda = 1/N follows the shots)."""
    return {"OPTIM.LR": 1e-5, "OPTIM.MAX_EPOCH": 300, "TRAINER.PROLIP.LAMBDA_RULE": "1/N"}


@TRAINER_REGISTRY.register()
class ProLIP(ClipTrainer):
    """ProLIP: the image projection ``weight`` alone is trained, from cached pre-projection features."""

    SPEC = declare(
        config_node="PROLIP", checkpoint_name="prolip", trainable=("weight",),
        # One fixed setting for every dataset (lambda = 1/N, lr 1e-5): nothing is chosen on val.
        selects_on_val=False,
        # The saved state is the projection alone (the classifier is rebuilt from the class names evaluated).
        class_agnostic=True,
        cache=CacheRequest(splits=("train", "test"), image_features="pre_projection"),
        label="ProLIP", recipe_config="configs/trainers/ProLIP/rn50.yaml", recipe=prolip_recipe)
    # The original's text classifier: each dataset's own template; ImageNet (and its variants) the 7 "select".
    template_policy = dict(imagenet=SELECT, others=OWN, imagenet_names=IMAGENET_FAMILY)

    def build_head(self) -> nn.Module:
        mcfg = self.method_cfg
        shots = int(self.cfg.DATASET.NUM_SHOTS)
        if shots <= 0 and mcfg.LAMBDA_RULE != "const":
            raise ValueError(f"ProLIP's lambda = {mcfg.LAMBDA_RULE} needs DATASET.NUM_SHOTS > 0 (got {shots}); "
                             "set TRAINER.PROLIP.LAMBDA_RULE const and TRAINER.PROLIP.LAMBDA")
        lam = regularization_weight(shots, mcfg.LAMBDA_RULE, mcfg.LAMBDA)
        text = self.text_classifier(normalize_each=True)
        weight0, bias = self.clip.image_projection()
        logger.info("ProLIP: projection %s, bias %s, lambda %.4g (%s)", tuple(weight0.shape), bias is not None, lam,
                    mcfg.LAMBDA_RULE)
        return ProjectionHead(weight0, bias, text, LOGIT_SCALE, lam)

    def build_optimization(self, head: nn.Module):
        return build_optimization([head.weight], self.cfg.OPTIM.LR, self.cfg.OPTIM.MAX_EPOCH,
                                  float(self.method_cfg.ADAM_EPS))

    def compute_loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.model.head.loss(logits, label)

    def metrics_extra(self) -> dict:
        return {"lambda": self.model.head.lam}
