"""TaskRes (Yu et al., CVPR 2023): a learnable residual on CLIP's frozen zero-shot text classifier.

Public code: geekyutao/TaskRes@5195359 ``trainers/taskres.py`` (``_get_base_text_features``: raw class
names). Formula, enhanced base (TaskRes*), checkpoint layout and class names: docs/methods/taskres.md.
"""
import logging
import os

import torch
from torch import nn

from engine import TRAINER_REGISTRY, CheckpointError, load_checkpoint, save_checkpoint
from trainers.base import ClipTrainer, add_method_config
from trainers.heads import cosine_logits
from trainers.spec import ResultVariant, declare
from trainers.templates import IMAGENET_FAMILY, OWN, SELECT_OWN
from trainers.text_classifier import pooled_template_features

logger = logging.getLogger(__name__)


def add_config(cfg) -> None:
    add_method_config(cfg, "TaskRes", PREC="fp16",
                      RESIDUAL_SCALE=0.5,   # alpha
                      ENHANCED_BASE="",     # path to a tuned text projection ("" or "none": regular base)
                      RAW_CLASSNAMES=True)  # the original's base: names as given; False: "_" -> " "
    add_method_config(cfg, "TaskResEnhancedBase", PREC="fp16",
                      OUTPUT_FILE="enhanced_base.pth.tar",  # written inside OUTPUT_DIR
                      RAW_CLASSNAMES=True)  # the names TaskRes* will build its base from


# ImageNet (and its variants): the 7 "select" templates plus "a photo of a {}."; others: their one template.
TEMPLATE_POLICY = dict(imagenet=SELECT_OWN, others=OWN, imagenet_names=IMAGENET_FAMILY)


def load_enhanced_projection(path: str, expected_shape: torch.Size) -> torch.Tensor:
    """Read a tuned text projection ``[width, embed_dim]`` from an enhanced-base file.

    Accepts the authors' released files and ours: ``{"state_dict": {"weight": W}}`` where ``W`` is an
    ``nn.Linear`` weight ``[embed_dim, width]`` (its transpose replaces ``text_projection``).
    """
    checkpoint = load_checkpoint(path)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "weight" not in state:
        raise CheckpointError(f"{path} is not an enhanced-base file: expected a dict with state_dict['weight'] "
                              "(an nn.Linear weight), as written by TaskResEnhancedBase or released by the authors")
    projection = state["weight"].float().t().contiguous()
    if projection.shape != expected_shape:
        raise CheckpointError(f"The enhanced base {path} has a projection of shape {tuple(projection.shape)}, "
                              f"but this backbone's is {tuple(expected_shape)}: it was made for another backbone")
    return projection


class TaskResHead(nn.Module):
    """Frozen base classifier plus a zero-initialised residual scaled by ``alpha``."""

    def __init__(self, base_text_features: torch.Tensor, alpha: float, logit_scale: float):
        super().__init__()
        self.register_buffer("base_text_features", base_text_features.float().clone())
        self.text_feature_residuals = nn.Parameter(torch.zeros_like(self.base_text_features))
        self.alpha = float(alpha)
        self.logit_scale = float(logit_scale)

    def classifier(self) -> torch.Tensor:
        return self.base_text_features + self.alpha * self.text_feature_residuals

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.classifier(), self.logit_scale)


def taskres_recipe(dataset: str, shots: int) -> dict:
    """Paper, Sec. 4.1 (geekyutao/TaskRes@5195359 configs/trainers/TaskRes/adam_lr2e-{3,4}_B256_ep{100,200}.yaml):
    Adam, batch 256, cosine, 1 constant warm-up epoch at 1e-5 (the file); lr 2e-3 (ImageNet 2e-4), alpha 0.5
    (OxfordFlowers 1.0), 100 epochs up to 4 shots, else 200. The same for every backbone: the repository's
    backbone configs (..._ep200_{RN101,ViT32,ViT16,RN50x16}.yaml, the paper's ImageNet 16-shot table) are the
    ImageNet 16-shot recipe with another MODEL.BACKBONE.NAME."""
    return {"OPTIM.LR": 2e-4 if dataset == "imagenet" else 2e-3,
            "OPTIM.MAX_EPOCH": 100 if shots <= 4 else 200,
            "TRAINER.TaskRes.RESIDUAL_SCALE": 1.0 if dataset == "oxford_flowers" else 0.5}


def enhanced_base_recipe(dataset: str, shots: int) -> dict:
    """TaskRes* stage 1 (scripts/taskres/enhanced_base.sh): the authors never released theirs, so this recipe is
    ours (lr 2e-5, cosine, 50 epochs, TaskRes's templates), never marked as the paper's."""
    return {"OPTIM.LR": 2e-5, "OPTIM.MAX_EPOCH": 50}


@TRAINER_REGISTRY.register()
class TaskRes(ClipTrainer):
    """Task Residual tuning; only ``text_feature_residuals`` is trained."""

    SPEC = declare(
        config_node="TaskRes", checkpoint_name="prompt_learner", trainable=("text_feature_residuals",),
        label="TaskRes", table_order=70,
        # The other result this trainer makes: TaskRes from an enhanced base (``--enhanced-base``).
        variants=(ResultVariant(key="TRAINER.TaskRes.ENHANCED_BASE", name="TaskRes*", label="TaskRes*",
                                flag="--enhanced-base", folder_suffix="_enhanced",
                                help="TaskRes*: the base classifier from this enhanced text projection file"),),
        recipe_config="configs/trainers/TaskRes/rn50.yaml", recipe=taskres_recipe)
    template_policy = TEMPLATE_POLICY

    def build_head(self) -> nn.Module:
        enhanced = self.method_cfg.ENHANCED_BASE
        projection = None
        if enhanced and enhanced.lower() != "none":
            projection = load_enhanced_projection(enhanced, self.clip.model.text_projection.shape)
            logger.info("TaskRes*: base classifier from the enhanced text projection in %s", enhanced)
        base = self.text_classifier(text_projection=projection, clean=not self.method_cfg.RAW_CLASSNAMES)
        return TaskResHead(base, self.method_cfg.RESIDUAL_SCALE, self.clip.logit_scale)

    def metrics_extra(self) -> dict:
        return {"residual_scale": float(self.method_cfg.RESIDUAL_SCALE),
                "enhanced_base": self.method_cfg.ENHANCED_BASE or None,
                "raw_classnames": bool(self.method_cfg.RAW_CLASSNAMES)}


class ProjectionTunedHead(nn.Module):
    """Zero-shot classifier whose text projection is trainable (TaskRes* stage 1).

    The text tower runs once: its pooled, pre-projection features per template are fixed buffers,
    and each step only re-projects and averages them.
    """

    def __init__(self, pooled: torch.Tensor, text_projection: torch.Tensor, logit_scale: float):
        super().__init__()
        self.register_buffer("pooled", pooled.float(), persistent=False)  # [T, C, W]
        self.text_projection = nn.Parameter(text_projection.detach().float().clone())  # [W, D]
        self.logit_scale = float(logit_scale)

    def classifier(self) -> torch.Tensor:
        return (self.pooled @ self.text_projection).mean(dim=0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.classifier(), self.logit_scale)


@TRAINER_REGISTRY.register()
class TaskResEnhancedBase(ClipTrainer):
    """Tunes CLIP's text projection on the few-shot data and writes an enhanced-base file for TaskRes*.

    The file (``OUTPUT_DIR/enhanced_base.pth.tar``) uses the authors' layout,
    ``{"state_dict": {"weight": projection^T}}``, plus metadata, so ``--enhanced-base`` reads both.
    """

    SPEC = declare(
        config_node="TaskResEnhancedBase", checkpoint_name="text_projection", trainable=("text_projection",),
        recipe_config="configs/trainers/TaskRes/rn50.yaml", recipe=enhanced_base_recipe, published_recipe=False)
    template_policy = TEMPLATE_POLICY

    def build_head(self) -> nn.Module:
        pooled = pooled_template_features(self.clip, self.classnames, self.templates,
                                          clean=not self.method_cfg.RAW_CLASSNAMES)
        return ProjectionTunedHead(pooled, self.clip.model.text_projection, self.clip.logit_scale)

    def after_train(self) -> None:
        super().after_train()
        path = os.path.join(self.output_dir, self.method_cfg.OUTPUT_FILE)
        state = {"state_dict": {"weight": self.head.text_projection.detach().t().contiguous().cpu()},
                 "epoch": self.max_epoch}
        state.update({k: v for k, v in self.checkpoint_metadata().items() if k != "config"})
        save_checkpoint(state, os.path.dirname(path), model_name=os.path.basename(path))
        logger.info("Enhanced base written to %s (use it with --enhanced-base %s)", path, path)
