"""CLIP-Adapter (Gao et al., 2021; IJCV): a bottleneck MLP on the frozen image feature, blended residually.

Public code: gaopengcuhk/CLIP-Adapter@08d07f8 ``clip_adapter.py``. Formula and deviations:
docs/methods/clip-adapter.md.
"""
import logging

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from trainers.base import ClipTrainer, add_method_config
from trainers.heads import cosine_logits
from trainers.spec import declare

logger = logging.getLogger(__name__)


def add_config(cfg) -> None:
    add_method_config(cfg, "CLIP_ADAPTER", PREC="fp16",
                      RATIO=0.2,      # weight of the adapted feature in the blend
                      REDUCTION=4)    # bottleneck width = d / REDUCTION


class ClipAdapterHead(nn.Module):
    """Bottleneck adapter on image features plus a frozen cosine classifier."""

    def __init__(self, text_features: torch.Tensor, reduction: int, ratio: float, logit_scale: float):
        super().__init__()
        dim = text_features.shape[1]
        hidden = max(1, dim // int(reduction))
        self.fc = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, dim, bias=False), nn.ReLU(inplace=True))
        self.register_buffer("text_features", F.normalize(text_features.float(), dim=-1), persistent=False)
        self.ratio = float(ratio)
        self.logit_scale = float(logit_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        blended = self.ratio * self.fc(features) + (1.0 - self.ratio) * features
        return cosine_logits(blended, self.text_features, self.logit_scale, weights_normalized=True)


def clip_adapter_recipe(dataset: str, shots: int) -> dict:
    """The public trainer (gaopengcuhk/CLIP-Adapter@08d07f8, clip_adapter.py) hard-codes the residual ratio 0.2 and
    runs under CoOp's Dassl config (SGD lr 0.002, batch 32, cosine, 1 warm-up epoch: the file; its README:
    "follow CoOp's command"); the Tip-Adapter paper's efficiency table trains it for 200 epochs (16-shot
    ImageNet). 200 epochs for every dataset, shot count and backbone. The CLIP-Adapter paper tunes the ratio per
    dataset; those values are not in its public code and are not used here."""
    return {"OPTIM.LR": 0.002, "OPTIM.MAX_EPOCH": 200, "TRAINER.CLIP_ADAPTER.RATIO": 0.2}


@TRAINER_REGISTRY.register()
class CLIP_Adapter(ClipTrainer):  # noqa: N801  (the public trainer name)
    """CLIP-Adapter; only the adapter's two weight matrices are trained."""

    SPEC = declare(
        config_node="CLIP_ADAPTER", checkpoint_name="clip_adapter", trainable=("fc.0.weight", "fc.2.weight"),
        # The saved state is the adapter alone (the text classifier is rebuilt for the classes evaluated): it
        # evaluates on other classes (base-to-novel, cross-dataset), as CLIP-Adapter's authors do.
        class_agnostic=True, label="CLIP-Adapter", table_order=40,
        recipe_config="configs/trainers/CLIP_Adapter/rn50.yaml", recipe=clip_adapter_recipe)

    def build_head(self) -> nn.Module:
        mcfg = self.method_cfg
        text = self.text_classifier()
        logger.info("CLIP-Adapter: feature width %d, bottleneck %d, ratio %.2f", text.shape[1],
                    max(1, text.shape[1] // int(mcfg.REDUCTION)), mcfg.RATIO)
        return ClipAdapterHead(text, mcfg.REDUCTION, mcfg.RATIO, self.clip.logit_scale)
