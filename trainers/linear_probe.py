"""Linear-probe CLIP: L2-regularised logistic regression on frozen CLIP image features, ``C`` chosen on val.

As CoOp's ``lpclip`` runs it (KaiyangZhou/CoOp@ff61507 ``lpclip/feat_extractor.py`` and
``lpclip/linear_probe.py``). Recipe and deviations: docs/methods/linear-probe.md.
"""
import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from trainers.base import ClipTrainer, add_method_config, validation_items
from trainers.spec import CacheRequest, declare

logger = logging.getLogger(__name__)

# L-BFGS stops when the largest gradient entry of the *summed* loss (+ |W|^2 / 2C) is below GTOL: the
# criterion of the scikit-learn CoOp's lpclip ran (1.0.2: summed loss, ``gtol=tol=1e-4``). Current
# scikit-learn minimises the mean loss with the same ``tol``, a criterion n times looser that stops a
# 16-shot ImageNet fit after 2-3 iterations; both solvers here apply GTOL / n to the mean loss.
GTOL = 1e-4
# The valfree track (DATASET.TRACK valfree) reads no validation data: one C for every dataset and shot count,
# scikit-learn's default (a library default chosen on no data of this benchmark; untuned).
VALFREE_C = 1.0
AUTO_TORCH_SIZE = 5e9  # samples x dims x classes above which ``auto`` uses torch (ImageNet 8/16 shots: 8e9/1.6e10)


def add_config(cfg) -> None:
    add_method_config(cfg, "LINEAR_PROBE", PREC="fp16",
                      NORMALIZE=False,  # CoOp's lpclip fits raw image features; True: L2-normalised
                      # Grid of C values: 10**SEARCH_MAX, 10**(SEARCH_MAX - SEARCH_STEP), ..., 10**SEARCH_MIN.
                      SEARCH_MAX=6.0,
                      SEARCH_MIN=-6.0,
                      SEARCH_STEP=2.0,
                      REFINE_STEPS=7,   # halvings of the log-space step around the best C
                      MAX_ITER=1000,    # L-BFGS iterations per fit
                      SOLVER="auto")    # sklearn (the original's) | torch (warm-started) | auto


@dataclass
class Probe:
    """A fitted multinomial probe: ``logits = x @ coef^T + intercept`` over ``classes`` (the labels seen)."""

    coef: np.ndarray       # [K, D]
    intercept: np.ndarray  # [K]
    classes: np.ndarray    # [K]
    iterations: int = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes[np.argmax(x @ self.coef.T + self.intercept, axis=1)]


def _fit_sklearn(x: np.ndarray, y: np.ndarray, c: float, max_iter: int) -> Probe:
    """scikit-learn's L-BFGS logistic regression, as CoOp's lpclip calls it."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=max_iter, solver="lbfgs", tol=GTOL / len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1 and len(clf.classes_) == 2:  # binary: one score s for classes_[1]; logits (0, s)
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    return Probe(coef, intercept, clf.classes_, int(np.max(clf.n_iter_)))


def _fit_torch(x: np.ndarray, y: np.ndarray, c: float, max_iter: int, device: Optional[torch.device] = None,
               init: Optional[Probe] = None) -> Probe:
    """scikit-learn's objective and stopping rule (mean cross-entropy + ``|W|^2 / (2 C n)``, intercept
    unpenalised, 10 corrections, largest gradient entry below ``GTOL / n``) with torch's L-BFGS on ``device``,
    optionally warm-started from another ``C``'s solution; float32 for large problems, else float64. For two
    classes the multinomial optimum makes scikit-learn's binary model's decisions at the same ``C``."""
    classes, yi = np.unique(y, return_inverse=True)
    (n, d), k = x.shape, len(classes)
    dtype = torch.float64 if n * d * k <= 5e8 else torch.float32
    xt = torch.as_tensor(x, dtype=dtype, device=device)
    yt = torch.as_tensor(yi, dtype=torch.long, device=device)
    warm = init is not None and np.array_equal(init.classes, classes)
    w = torch.tensor(init.coef if warm else np.zeros((k, d)), dtype=dtype, device=device, requires_grad=True)
    b = torch.tensor(init.intercept if warm else np.zeros(k), dtype=dtype, device=device, requires_grad=True)
    reg = 1.0 / (2.0 * c * n)
    optim = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, max_eval=max_iter * 5 // 4, tolerance_grad=GTOL / n,
                              tolerance_change=1e-12, history_size=10, line_search_fn="strong_wolfe")

    def closure():
        optim.zero_grad()
        loss = F.cross_entropy(xt @ w.t() + b, yt) + reg * (w * w).sum()
        loss.backward()
        return loss

    optim.step(closure)
    iterations = int(optim.state[optim._params[0]].get("n_iter", 0))
    return Probe(w.detach().cpu().double().numpy(), b.detach().cpu().double().numpy(), classes, iterations)


def fit_probe(x: np.ndarray, y: np.ndarray, c: float, max_iter: int, solver: str = "sklearn",
              device: Optional[torch.device] = None, init: Optional[Probe] = None) -> Probe:
    """Fit the L2 logistic regression with ``solver`` ``sklearn`` (the original's) or ``torch`` (faster at
    ImageNet size; warm starts from ``init``)."""
    if solver == "sklearn":
        return _fit_sklearn(x, y, c, max_iter)
    if solver == "torch":
        return _fit_torch(x, y, c, max_iter, device, init)
    raise ValueError(f"Unknown linear-probe solver {solver!r}: use sklearn, torch or auto")


def search_regularization(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                          grid: Sequence[float], refine_steps: int, max_iter: int = 1000, solver: str = "sklearn",
                          device: Optional[torch.device] = None) -> Tuple[float, float, List[Tuple[float, float]], Probe]:
    """Pick ``C`` by val accuracy: the best of ``grid`` (first on ties), then a log-space refinement that
    keeps the best ``C`` seen; with the torch solver each fit starts from the nearest ``C`` fitted so far.
    Returns ``(C, val accuracy in %, [(C, accuracy), ...] in evaluation order, the probe fitted with C)``.
    """
    history: List[Tuple[float, float]] = []
    solutions: Dict[float, Probe] = {}

    def val_accuracy(log_c: float) -> float:
        c = 10.0 ** log_c
        init = solutions[min(solutions, key=lambda v: abs(v - log_c))] if solutions else None
        probe = fit_probe(x_train, y_train, c, max_iter, solver, device, init)
        solutions[log_c] = probe
        acc = float((probe.predict(x_val) == y_val).mean() * 100.0)
        history.append((c, acc))
        logger.info("Linear probe: C = %.3g -> val accuracy %.2f%% (%d iterations)", c, acc, probe.iterations)
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
    return 10.0 ** best_log, best_acc, history, solutions[best_log]


class LinearProbeHead(nn.Module):
    """``f @ weight^T + bias`` (``f`` L2-normalised when ``normalize``) with fitted (not trained) weights,
    kept as buffers so they are saved."""

    def __init__(self, num_classes: int, dim: int, normalize: bool = False):
        super().__init__()
        self.register_buffer("weight", torch.zeros(num_classes, dim))
        self.register_buffer("bias", torch.zeros(num_classes))
        self.register_buffer("C", torch.tensor(float("nan")))  # the chosen inverse regularisation strength
        self.normalize = bool(normalize)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return features @ self.weight.t() + self.bias

    @torch.no_grad()
    def set_from_probe(self, probe: Probe, c: float) -> None:
        """Copy a fitted probe into the buffers (classes absent from train never win)."""
        classes = torch.as_tensor(probe.classes, dtype=torch.long)
        self.weight.zero_()
        self.bias.fill_(-1e4)
        self.weight[classes] = torch.as_tensor(probe.coef, dtype=torch.float32, device=self.weight.device)
        self.bias[classes] = torch.as_tensor(probe.intercept, dtype=torch.float32, device=self.bias.device)
        self.C.fill_(c)


@TRAINER_REGISTRY.register()
class LinearProbeCLIP(ClipTrainer):
    """Logistic regression on frozen CLIP image features; ``C`` chosen on val. Nothing is trained by SGD."""

    SPEC = declare(
        config_node="LINEAR_PROBE", checkpoint_name="linear_probe", training_free=True,
        selects_on_val=True,  # C chosen on val; VALFREE_C in the valfree track
        cache=CacheRequest(train_views="plain"),  # the probe fits on plain (test-transform) features
        label="Linear probe", table_order=20,
        recipe_config="configs/trainers/LinearProbeCLIP/rn50.yaml")  # everything is in the file (C searched on val)

    def metrics_extra(self) -> dict:
        return {"C": float(self.head.C), "normalize": bool(self.method_cfg.NORMALIZE),
                "solver": getattr(self, "solver", None)}

    def build_head(self) -> nn.Module:
        return LinearProbeHead(len(self.classnames), self.clip.embed_dim, normalize=self.method_cfg.NORMALIZE)

    def _features(self, split: str, items) -> Tuple[np.ndarray, np.ndarray]:
        x, labels = (t.cpu() for t in self.plain_features(split, items))
        if self.method_cfg.NORMALIZE:
            x = F.normalize(x, dim=-1)
        return x.numpy(), labels.numpy()

    def fit(self) -> None:
        mcfg = self.method_cfg
        x_train, y_train = self._features("train", self.dm.dataset.train_x)
        self.solver = str(mcfg.SOLVER)
        if self.solver == "auto":  # sklearn (the original's) unless ImageNet-sized: hours on a CPU there
            big = x_train.shape[0] * x_train.shape[1] * len(np.unique(y_train)) > AUTO_TORCH_SIZE
            self.solver = "torch" if big else "sklearn"
        if self.valfree:
            probe = fit_probe(x_train, y_train, VALFREE_C, int(mcfg.MAX_ITER), self.solver, self.device)
            logger.info("Linear probe (%s solver): fixed C = %.4g (valfree track, no search)", self.solver, VALFREE_C)
            self.head.set_from_probe(probe, VALFREE_C)
            return
        # lpclip searches on min(K, 4) val images per class (ImageNet: of its test set; here held-out train
        # images instead).
        x_val, y_val = self._features("val", validation_items(self, paper="fewshot_val"))
        n = int(round((mcfg.SEARCH_MAX - mcfg.SEARCH_MIN) / mcfg.SEARCH_STEP)) + 1
        grid = [10.0 ** (mcfg.SEARCH_MAX - i * mcfg.SEARCH_STEP) for i in range(n)]
        c, acc, _, probe = search_regularization(x_train, y_train, x_val, y_val, grid, int(mcfg.REFINE_STEPS),
                                                 int(mcfg.MAX_ITER), self.solver, self.device)
        logger.info("Linear probe (%s solver): chosen C = %.4g (val accuracy %.2f%%)", self.solver, c, acc)
        self.head.set_from_probe(probe, c)
