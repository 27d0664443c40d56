"""Linear-probe CLIP: L2-regularised logistic regression on frozen, L2-normalised image features.

Recipe (CLIP paper, as CoOp's ``lpclip`` runs it): scikit-learn's logistic regression (L-BFGS, L2
penalty); the inverse regularisation strength ``C`` is searched over 1e6, 1e4, ..., 1e-6 on the
few-shot val split (min(shots, 4) images per class), refined around the best grid value, and the
probe refit on the few-shot train set with that ``C`` is evaluated on test.

How it differs from the public code (CoOp's ``lpclip/``), and why:

- one ``train.py`` run instead of a feature-extraction script plus a probe script: features come from
  the shared feature cache (test transform, one view, for train, val and test alike);
- the fitted weights live in the head (buffers ``weight``, ``bias`` and the chosen ``C``) and are saved
  as ``linear_probe/model.pth.tar-1``, so ``--eval-only --model-dir DIR --load-epoch 1`` reproduces the
  accuracy; the public code keeps nothing;
- the refinement after the grid is our own log-space search (a step of one decade around the best
  ``C``, halved ``REFINE_STEPS`` times) rather than the public binary search; both settle within a
  small fraction of a decade of the best grid value;
- ImageNet's "val" is its test set (as in CoOp); here the search runs on a held-out val drawn from
  ImageNet's train images instead (``validation_items``), so no test image ever picks ``C``.
"""
import logging
import math
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY, build_transform
from trainers.base import ClipTrainer, validation_items

logger = logging.getLogger(__name__)


def add_linear_probe_config(cfg) -> None:
    from yacs.config import CfgNode as CN

    if "LINEAR_PROBE" not in cfg.TRAINER:
        cfg.TRAINER.LINEAR_PROBE = CN()
        cfg.TRAINER.LINEAR_PROBE.PREC = "fp16"
        # Grid of C values: 10**SEARCH_MAX, 10**(SEARCH_MAX - SEARCH_STEP), ..., 10**SEARCH_MIN.
        cfg.TRAINER.LINEAR_PROBE.SEARCH_MAX = 6.0
        cfg.TRAINER.LINEAR_PROBE.SEARCH_MIN = -6.0
        cfg.TRAINER.LINEAR_PROBE.SEARCH_STEP = 2.0
        cfg.TRAINER.LINEAR_PROBE.REFINE_STEPS = 7   # halvings of the log-space step around the best C
        cfg.TRAINER.LINEAR_PROBE.MAX_ITER = 1000    # L-BFGS iterations per fit


def _fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=max_iter, solver="lbfgs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def search_regularization(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                          grid: Sequence[float], refine_steps: int, max_iter: int = 1000
                          ) -> Tuple[float, float, List[Tuple[float, float]]]:
    """Pick ``C`` by val accuracy: the best of ``grid`` (first on ties), then a log-space refinement.

    Returns ``(C, val accuracy in %, [(C, accuracy), ...] in evaluation order)``. Only train and val
    data are given, so nothing else can influence the choice.
    """
    history: List[Tuple[float, float]] = []

    def val_accuracy(log_c: float) -> float:
        c = 10.0 ** log_c
        acc = float((_fit(x_train, y_train, c, max_iter).predict(x_val) == y_val).mean() * 100.0)
        history.append((c, acc))
        logger.info("Linear probe: C = %.3g -> val accuracy %.2f%%", c, acc)
        return acc

    logs = [math.log10(c) for c in grid]
    accs = [val_accuracy(v) for v in logs]
    best = int(np.argmax(accs))
    best_log, best_acc = logs[best], accs[best]
    step = abs(logs[1] - logs[0]) / 2 if len(logs) > 1 else 1.0
    for _ in range(refine_steps):
        candidates = [(val_accuracy(best_log + d * step), best_log + d * step) for d in (-1, 1)]
        acc, log_c = max(candidates, key=lambda t: t[0])  # ties: the smaller C (stronger regularisation)
        if acc > best_acc:
            best_acc, best_log = acc, log_c
        step /= 2
    return 10.0 ** best_log, best_acc, history


class LinearProbeHead(nn.Module):
    """``norm(f) @ weight^T + bias`` with fitted (not trained) weights, kept as buffers so they are saved."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.register_buffer("weight", torch.zeros(num_classes, dim))
        self.register_buffer("bias", torch.zeros(num_classes))
        self.register_buffer("C", torch.tensor(float("nan")))  # the chosen inverse regularisation strength

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.float(), dim=-1) @ self.weight.t() + self.bias

    @torch.no_grad()
    def set_from_sklearn(self, clf, c: float) -> None:
        """Copy a fitted ``LogisticRegression`` into the buffers (classes absent from train never win)."""
        classes = torch.as_tensor(clf.classes_, dtype=torch.long)
        coef = torch.as_tensor(clf.coef_, dtype=torch.float32)
        intercept = torch.as_tensor(clf.intercept_, dtype=torch.float32)
        if coef.shape[0] == 1 and len(classes) == 2:  # binary: one score s for classes_[1]; logits (0, s)
            coef = torch.cat([torch.zeros_like(coef), coef])
            intercept = torch.cat([torch.zeros_like(intercept), intercept])
        self.weight.zero_()
        self.bias.fill_(-1e4)
        self.weight[classes] = coef.to(self.weight.device)
        self.bias[classes] = intercept.to(self.bias.device)
        self.C.fill_(c)


@TRAINER_REGISTRY.register()
class LinearProbeCLIP(ClipTrainer):
    """Logistic regression on frozen CLIP image features; ``C`` chosen on val. Nothing is trained by SGD."""

    CONFIG_NODE = "LINEAR_PROBE"
    CHECKPOINT_NAME = "linear_probe"
    TRAINABLE = ()
    TRAINING_FREE = True
    AUGMENTED_TRAIN_VIEWS = False  # the probe fits on plain (test-transform) features

    def metrics_extra(self) -> dict:
        return {"C": float(self._models[self.CHECKPOINT_NAME].C)}

    def build_head(self) -> nn.Module:
        return LinearProbeHead(len(self.classnames), self.clip.embed_dim)

    def _features(self, split: str, items) -> Tuple[np.ndarray, np.ndarray]:
        entry = self.cached_features(split, items, build_transform(self.cfg, is_train=False), 1, None)
        x = F.normalize(entry["features"][0].float(), dim=-1).numpy()
        return x, entry["labels"].numpy()

    def fit(self) -> None:
        mcfg = self.method_cfg
        x_train, y_train = self._features("train", self.dm.dataset.train_x)
        x_val, y_val = self._features("val", validation_items(self))
        n = int(round((mcfg.SEARCH_MAX - mcfg.SEARCH_MIN) / mcfg.SEARCH_STEP)) + 1
        grid = [10.0 ** (mcfg.SEARCH_MAX - i * mcfg.SEARCH_STEP) for i in range(n)]
        c, acc, _ = search_regularization(x_train, y_train, x_val, y_val, grid, int(mcfg.REFINE_STEPS),
                                          int(mcfg.MAX_ITER))
        logger.info("Linear probe: chosen C = %.4g (val accuracy %.2f%%); refitting on the train set", c, acc)
        head = self._models[self.CHECKPOINT_NAME]
        head.set_from_sklearn(_fit(x_train, y_train, c, int(mcfg.MAX_ITER)), c)
