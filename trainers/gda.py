"""GDA: Gaussian discriminant analysis on CLIP image features, training-free (Wang et al., ICLR 2024).

"A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation". Each class is a Gaussian over
L2-normalised image features with its own mean and one covariance shared by all classes; with equal
priors the posterior is linear in the feature, so the few-shot set gives a linear classifier in closed form::

    mu_k      = mean of class k's features (all augmented views of its images)
    P         = D * pinv((M - 1) * S + trace(S) * I)      S: covariance of the class-centred features (M rows)
    W_k       = P mu_k,    b_k = log(1 / K) - mu_k^T P mu_k / 2
    logits(f) = logit_scale * f @ T^T + alpha * (f @ W^T + b)

``T`` is the zero-shot classifier (normalised rows). ``P`` is the original's shrinkage estimator of the
precision matrix (its code calls it the "KS estimator"): the scatter matrix plus ``trace(S)`` on the diagonal,
pseudo-inverted and scaled by the dimension ``D``. ``alpha`` is chosen on validation data over a fixed grid.

As the public code computes it (mrflogs/ICLR24@560fe211700964c915442ff98dbe47dd09656a35, ``main_few_shots.py``
``run`` and ``main``, ``utils.py`` ``clip_classifier``, ``datasets/*.py``, ``configs/few_shots/*.yaml``):

- features: ``augment_epoch`` = 10 augmented views of every few-shot training image (every dataset's config),
  each L2-normalised, all 10 N used as samples (not averaged, unlike Tip-Adapter's keys); the views are random
  resized crops (scale 0.5-1; ImageNet 0.08-1, its own train transform) with a horizontal flip, CLIP's mean/std;
  val and test features from CLIP's test transform, normalised;
- text: the dataset's one template (ImageNet: its 7 "select" templates), class names with ``_`` -> space, each
  prompt embedding normalised, averaged over templates, normalised; zero-shot logits scaled by 100;
- alpha: the first value with the highest val accuracy over 1e-4, 1e-3, ..., 100 (``ALPHA_GRID``), on the
  dataset's whole val split (ImageNet: its test set); the code's fallback when no value beats 0% is 0.1;
- precision: fp32 throughout (its first ``clip_classifier`` call turns the model to fp32 before any training
  view is encoded); torch's ``cov`` and ``linalg.pinv``; uniform priors ``1 / K``.
"""
import logging
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from trainers.heads import cosine_logits

logger = logging.getLogger(__name__)

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


def gda_classifier(means: torch.Tensor, precision: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(W [K, D], b [K])`` of the linear discriminant with equal class priors."""
    weight = means @ precision  # row k: mu_k^T P (the original's einsum 'nd, dc -> cn', transposed)
    prior = torch.full((means.shape[0],), 1.0 / means.shape[0], dtype=means.dtype, device=means.device)
    bias = prior.log() - (weight * means).sum(dim=1) / 2
    return weight, bias


def fit_gda(views: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` from ``views`` ``[V, N, D]`` (V augmented views of N training images; labels ``[N]``): every
    view, L2-normalised, is one sample. Computed in fp32, as the original."""
    if views.dim() != 3 or views.shape[1] != labels.shape[0]:
        raise GDAError(f"GDA expects features [views, images, dim] and one label per image, got "
                       f"{tuple(views.shape)} and {tuple(labels.shape)}")
    features = F.normalize(views.float(), dim=-1).reshape(-1, views.shape[-1])
    sample_labels = labels.to(features.device).repeat(views.shape[0])  # view-major, as the original's passes
    means = class_means(features, sample_labels, num_classes)
    return gda_classifier(means, shrunk_precision(features, sample_labels, means))


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
        classes, dim = text_weights.shape
        self.register_buffer("text_weights", F.normalize(text_weights.float(), dim=-1), persistent=False)
        self.register_buffer("weight", torch.zeros(classes, dim))
        self.register_buffer("bias", torch.zeros(classes))
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.logit_scale = float(logit_scale)

    def zero_shot_logits(self, features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.text_weights, self.logit_scale, weights_normalized=True)

    def gda_logits(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.float(), dim=-1) @ self.weight.t() + self.bias

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.zero_shot_logits(features) + self.alpha * self.gda_logits(features)

    @torch.no_grad()
    def fit(self, views: torch.Tensor, labels: torch.Tensor) -> None:
        weight, bias = fit_gda(views.to(self.weight.device), labels.to(self.weight.device), self.weight.shape[0])
        self.weight.copy_(weight)
        self.bias.copy_(bias)

    @torch.no_grad()
    def search(self, features: torch.Tensor, labels: torch.Tensor, grid: Sequence[float] = ALPHA_GRID):
        """Sets ``alpha`` to the grid value the original would choose on these (val) features; returns
        ``(alpha, accuracy %, accuracies per grid value)``."""
        alpha, acc, accs = search_alpha(self.zero_shot_logits(features), self.gda_logits(features), labels, grid)
        self.alpha.fill_(alpha)
        return alpha, acc, accs
