"""CLAP (Silva-Rodriguez et al., CVPR 2024): ZS-LP with a class-adaptive constraint to the zero-shot prototypes.

jusiro/CLAP@dbdf409 ``trainers/adapters.py``: ``AdapterMethod.init_lagrangian_multipliers`` and
``zero_shot_constraint`` with CONSTRAINT ``l2``. Loss and multipliers: docs/methods/zs-lp-clap.md.
"""
import logging

import torch
import torch.nn.functional as F

from engine import TRAINER_REGISTRY, build_transform
from trainers.base import add_method_config
from trainers.heads import cosine_logits
from trainers.probe import PROBE, PrototypeProbeTrainer
from trainers.spec import declare

logger = logging.getLogger(__name__)


def add_config(cfg) -> None:
    add_method_config(cfg, "CLAP", PREC="fp16")


def class_multipliers(zero_shot_logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per class, the mean zero-shot softmax probability of that class over its support samples."""
    probs = F.softmax(zero_shot_logits.float(), dim=-1)
    onehot = F.one_hot(labels, num_classes).float()
    return (probs * onehot).sum(0) / onehot.sum(0)


def constraint_penalty(prototypes: torch.Tensor, base: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
    """``mean_c(lambda_c * ||w_c - t_c||^2)``."""
    return (multipliers * (prototypes - base).pow(2).sum(-1)).mean()


@TRAINER_REGISTRY.register()
class CLAP(PrototypeProbeTrainer):
    """ZS-LP plus the class-adaptive l2 constraint; multipliers come from the training set, never from val."""

    SPEC = declare(config_node="CLAP", label="CLAP", **PROBE)

    def use_train_features(self) -> None:
        super().use_train_features()
        head = self.model.head
        if self.cfg.FEATURE_CACHE.ENABLED:
            # The same cache entry the training loader reads (memoised: nothing is encoded again).
            entry = self.feature_source.get("train", self.dm.dataset.train_x,
                                            build_transform(self.cfg, is_train=True), self.train_views(),
                                            max(self.cfg.SEED, 0))
            views = entry["features"]
            feats = views.reshape(-1, views.shape[-1]).to(self.device)
            labels = entry["labels"].repeat(views.shape[0]).to(self.device)
        else:  # --no-cache: one pass of the image training loader (one augmented view per image)
            feats, labels = self._encode_train_plain()
        with torch.no_grad():
            zs = cosine_logits(feats, head.base, head.logit_scale)
        head.register_buffer("multipliers", class_multipliers(zs, labels, head.base.shape[0]), persistent=False)
        logger.info("CLAP class multipliers: mean %.4f, min %.4f, max %.4f", head.multipliers.mean().item(),
                    head.multipliers.min().item(), head.multipliers.max().item())

    def _encode_train_plain(self):
        feats, labels = [], []
        with torch.no_grad():
            for batch in self.train_loader_x:
                x, y = self.parse_batch_train(batch)
                feats.append(self.clip.encode_image(x).float())
                labels.append(y)
        return torch.cat(feats), torch.cat(labels)

    def compute_loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        head = self.model.head
        return F.cross_entropy(logits, label) + constraint_penalty(head.prototypes, head.base, head.multipliers)

    def metrics_extra(self) -> dict:
        mult = getattr(self.model.head, "multipliers", None)
        return {} if mult is None else {"class_multipliers_mean": float(mult.mean())}
