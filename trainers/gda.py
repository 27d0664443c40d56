"""GDA: Gaussian discriminant analysis on CLIP image features, training-free (Wang et al., ICLR 2024).

Each class a Gaussian with its own mean and one shared covariance: a linear classifier in closed form, blended
with zero-shot CLIP by an ``alpha`` chosen on val. Public code: mrflogs/ICLR24@560fe211700964c915442ff98dbe47dd09656a35,
``main_few_shots.py`` ``run`` and ``main``, ``utils.py`` ``clip_classifier``, ``datasets/*.py``,
``configs/few_shots/*.yaml``. Formulas, recipe and deviations: docs/methods/gda.md.
"""
import logging
from dataclasses import replace
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY, build_transform
from features import FeatureCacheError
from trainers.base import ClipTrainer, add_method_config, validation_items
from trainers.heads import CosineClassifier
from trainers.spec import CacheRequest, KeyViews, declare
from trainers.templates import IMAGENET_FAMILY, OWN, SELECT

logger = logging.getLogger(__name__)

CROP_SCALE, IMAGENET_CROP_SCALE = (0.5, 1.0), (0.08, 1.0)  # the views: train_tranform / datasets/imagenet.py
# The valfree track reads no validation data: this alpha for every dataset and shot count, the value the original's
# search chose most often in its own published runs (logs/fewshots.log: 46 of 165 RN50 runs), not tuned here.
VALFREE_ALPHA = 1.0
ALPHA_GRID = (0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0)  # main_few_shots.py run(): the search over alpha
FALLBACK_ALPHA = 0.1  # run(): best_alpha's initial value, kept when no alpha beats 0% val accuracy


class GDAError(ValueError):
    """A GDA fit that cannot be made (a class with no training feature, features of the wrong shape)."""


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[K, D]`` mean feature of each class; every class must have at least one feature."""
    counts = torch.bincount(labels, minlength=num_classes)
    if counts.numel() > num_classes or bool((counts == 0).any()):
        missing = [int(k) for k in torch.nonzero(counts[:num_classes] == 0).flatten()]
        raise GDAError(f"GDA needs training features of every class 0..{num_classes - 1}; classes {missing or '?'} "
                       f"have none (labels range {int(labels.min())}..{int(labels.max())})")
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    return sums / counts.to(features.dtype).unsqueeze(1)


def shrunk_precision(features: torch.Tensor, labels: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``D * pinv((M - 1) * S + trace(S) * I)``, ``S`` the covariance (torch.cov, correction 1) of the ``M``
    class-centred features: the shared precision matrix, as the original estimates it."""
    centred = features - means[labels]
    rows, dim = centred.shape
    if rows < 2:
        raise GDAError(f"GDA needs at least 2 training features to estimate a covariance, got {rows}")
    cov = centred.T.cov()
    eye = torch.eye(dim, dtype=features.dtype, device=features.device)
    return dim * torch.linalg.pinv((rows - 1) * cov + cov.trace() * eye)


def fit_gda(views: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(W [K, D], b [K])`` of the linear discriminant with equal class priors, from ``views`` ``[V, N, D]``
    (V augmented views of N training images; labels ``[N]``): every view, L2-normalised, is one sample.
    Computed in fp32, as the original."""
    if views.dim() != 3 or views.shape[1] != labels.shape[0]:
        raise GDAError(f"GDA expects features [views, images, dim] and one label per image, got "
                       f"{tuple(views.shape)} and {tuple(labels.shape)}")
    features = F.normalize(views.float(), dim=-1).reshape(-1, views.shape[-1])
    sample_labels = labels.to(features.device).repeat(views.shape[0])  # view-major, as the original's passes
    means = class_means(features, sample_labels, num_classes)
    # Row k: mu_k^T P (the original's einsum 'nd, dc -> cn', transposed).
    weight = means @ shrunk_precision(features, sample_labels, means)
    prior = torch.full((num_classes,), 1.0 / num_classes, dtype=means.dtype, device=means.device)
    return weight, prior.log() - (weight * means).sum(dim=1) / 2


def search_alpha(zero_shot: torch.Tensor, gda: torch.Tensor, labels: torch.Tensor,
                 grid: Sequence[float] = ALPHA_GRID) -> Tuple[float, float, list]:
    """``(alpha, val accuracy %, accuracies per grid value)``: the first grid value with the highest accuracy of
    ``zero_shot + alpha * gda`` (a later value must be strictly better, as the original's loop); the original's
    fallback 0.1 when every accuracy is 0."""
    best_alpha, best_acc, accs = FALLBACK_ALPHA, 0.0, []
    for alpha in grid:
        pred = (zero_shot + float(alpha) * gda).argmax(dim=-1)
        acc = 100 * int((pred == labels.to(pred.device)).sum()) / labels.shape[0]  # the original's cls_acc
        accs.append(acc)
        if acc > best_acc:
            best_alpha, best_acc = float(alpha), acc
    return best_alpha, best_acc, accs


class GDAHead(nn.Module):
    """Zero-shot logits plus ``alpha`` times the Gaussian discriminant's (features normalised first)."""

    def __init__(self, text_weights: torch.Tensor, logit_scale: float, alpha: float):
        super().__init__()
        self.zero_shot = CosineClassifier(text_weights, logit_scale)  # nothing saved: rebuilt from text
        self.register_buffer("weight", torch.zeros_like(self.zero_shot.weights))
        self.register_buffer("bias", torch.zeros(text_weights.shape[0]))
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))  # exactly the grid value

    def gda_logits(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.float(), dim=-1) @ self.weight.t() + self.bias

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.zero_shot(features) + self.alpha * self.gda_logits(features)

    @torch.no_grad()
    def fit(self, views: torch.Tensor, labels: torch.Tensor) -> None:
        weight, bias = fit_gda(views.to(self.weight.device), labels.to(self.weight.device), self.weight.shape[0])
        self.weight.copy_(weight)
        self.bias.copy_(bias)

    @torch.no_grad()
    def search(self, features: torch.Tensor, labels: torch.Tensor, grid: Sequence[float] = ALPHA_GRID):
        """Sets ``alpha`` to the grid value the original would choose on these (val) features; returns
        ``(alpha, accuracy %, accuracies per grid value)``."""
        alpha, acc, accs = search_alpha(self.zero_shot(features), self.gda_logits(features), labels, grid)
        self.alpha.fill_(alpha)
        return alpha, acc, accs


def add_config(cfg) -> None:
    add_method_config(cfg, "GDA", PREC="fp16",
                      AUGMENT_EPOCH=10,   # augmented views of each training image, every one a sample of its class
                      # random resized crop scale of the views; None: the original's, (0.5, 1) (ImageNet (0.08, 1))
                      CROP_SCALE=None,
                      SEARCH_ALPHA=True,  # search alpha on val over ALPHA_GRID (not in the valfree track)
                      ALPHA=None)         # alpha when not searching; None: VALFREE_ALPHA


# The views: AUGMENT_EPOCH per training image, random resized crop and flip. The same crop (ImageNet aside), count and
# seed stream as Tip-Adapter's keys, so a grid running both encodes them once. ``view_transform`` applies the
# dataset's crop scale (``crop_scale``); the cost model reads only the count.
VIEWS = KeyViews(crop_scale=CROP_SCALE, count_key="AUGMENT_EPOCH", seed_offset=1_000_003)


@TRAINER_REGISTRY.register()
class GDA(ClipTrainer):
    """GDA: the classifier is fitted once from the training views; alpha chosen on val (or fixed)."""

    SPEC = declare(
        config_node="GDA", checkpoint_name="gda", training_free=True,
        selects_on_val=True,  # alpha searched on val; VALFREE_ALPHA in the valfree track
        cache=CacheRequest(train_views="none", keys=VIEWS),  # its views are its own (``fit``)
        label="GDA", table_order=100,
        # One setting for every dataset and shot count (configs/few_shots/*.yaml); the ImageNet crop by the trainer.
        recipe_config="configs/trainers/GDA/rn50.yaml")
    template_policy = dict(imagenet=SELECT, others=OWN, imagenet_names=IMAGENET_FAMILY)
    val_accuracies = None  # val accuracy per ALPHA_GRID value, once searched

    def crop_scale(self) -> Tuple[float, float]:
        scale = self.method_cfg.CROP_SCALE
        if scale is None:
            return IMAGENET_CROP_SCALE if self.cfg.DATASET.NAME == "ImageNet" else CROP_SCALE
        if len(scale) != 2 or not 0 < float(scale[0]) <= float(scale[1]) <= 1:
            raise ValueError(f"TRAINER.GDA.CROP_SCALE must be (min, max) with 0 < min <= max <= 1, got {list(scale)}")
        return float(scale[0]), float(scale[1])

    def view_transform(self):
        return build_transform(replace(self.spec.cache.keys, crop_scale=self.crop_scale()).input_config(self.cfg),
                               is_train=True)

    def searches(self) -> bool:
        return bool(self.method_cfg.SEARCH_ALPHA) and not self.valfree

    def build_head(self) -> nn.Module:
        text, alpha = self.text_classifier(normalize_each=True), self.method_cfg.ALPHA
        return GDAHead(text, self.clip.logit_scale, VALFREE_ALPHA if alpha is None else float(alpha))

    def fit(self) -> None:
        keys = self.spec.cache.keys
        views = keys.views(self.method_cfg)
        if views < 1:
            raise ValueError(f"TRAINER.GDA.AUGMENT_EPOCH must be at least 1, not {views}")
        if self.feature_source.test_only:
            raise FeatureCacheError(f"{self.cfg.DATASET.NAME} is a test-only dataset: fit GDA on ImageNet and evaluate "
                                    "here with --eval-only --model-dir RUN_DIR")
        entry = self.feature_source.get("train", self.dm.dataset.train_x, self.view_transform(), views,
                                        keys.seed(self.cfg.SEED))
        self.head.fit(entry["features"][:views].to(self.device), entry["labels"].to(self.device))
        logger.info("GDA: fitted on %d views of %d images (%d classes)", views, entry["labels"].shape[0],
                    self.head.weight.shape[0])
        if not self.searches():
            logger.info("GDA: no search%s; alpha %g", " (valfree track)" * self.valfree, float(self.head.alpha))
            return
        # The original searches the whole val split (ImageNet: its test set; here held-out train images instead).
        features, labels = self.plain_features("val", validation_items(self, paper="val_split"))
        alpha, acc, self.val_accuracies = self.head.search(features, labels)
        logger.info("GDA: alpha %g chosen on val (accuracy %.2f%%)", alpha, acc)

    def metrics_extra(self) -> dict:
        extra = {"alpha": float(self.head.alpha), "search_alpha": self.searches(), "augment_epoch":
                 int(self.method_cfg.AUGMENT_EPOCH), "crop_scale": list(self.crop_scale())}
        if self.val_accuracies is not None:
            extra["val_accuracy_by_alpha"] = dict(zip((str(a) for a in ALPHA_GRID), self.val_accuracies))
        return extra
