"""LP++ (Huang et al., CVPR 2024): a linear probe whose class weights blend image prototypes with text.

Facts from FereshteShakeri/FewShot-CLIP-Strong-Baseline@f81054f ``methods/linear_probe_p2.py``
(``LinearProbe_P2.forward``, ``calculate_lr_w``, ``calculate_lr_alpha``, ``calculate_init_alpha``),
``methods/utils.py`` (``compute_centroids``: a sum, its division commented out), ``utils.py``
(``clip_classifier``), ``main.py`` (train transform) and ``configs/base.yaml`` (300 epochs). Formula,
data-driven steps and deviations: docs/methods/lpp.md. One iteration is one epoch of the project's loop.
"""
import logging
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from features import FeatureCacheError, FeatureLoader
from trainers.base import ClipTrainer, add_method_config, validation_items
from trainers.spec import CacheRequest, declare
from trainers.templates import IMAGENET_FAMILY, OWN, SELECT

logger = logging.getLogger(__name__)

INIT_ALPHA_SCALE = 250.0  # calculate_init_alpha: 250 / shots * (shots * per-class mean text logit)


def add_config(cfg) -> None:
    add_method_config(cfg, "LPP", PREC="fp16",
                      MOMENTUM=0.9,       # SGD momentum of W and b
                      ALPHA_EVERY=10,     # iterations between two alpha steps
                      # True (public code): alpha steps along its gradients summed since the start; False: the latest one.
                      ACCUMULATE_ALPHA_GRAD=True,
                      SELECT_ON_VAL=True)  # True (public code): deploy the best-val iteration; False: the last


# ---- the data-driven quantities (public code: calculate_lr_w, calculate_lr_alpha, calculate_init_alpha) ----
def step_size_w(features: torch.Tensor) -> float:
    """``4 N / lambda_max(F^T F)`` for the ``[N, D]`` normalised support features (SGD step of W and b)."""
    f = features.double()
    return float(4 * f.shape[0] / torch.linalg.eigvalsh(f.t() @ f).max())


def step_size_alpha(features: torch.Tensor, text: torch.Tensor) -> float:
    """``N / (4 max_c sum_i (f_i . t_c)^2)`` (the step of alpha)."""
    t = features.double() @ text.double().t()
    return float(features.shape[0] / (4 * t.pow(2).sum(0).max()))


def class_sums(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per class, the *sum* of its support features (the public ``compute_centroids`` does not divide)."""
    return F.one_hot(labels, num_classes).to(features.dtype).t() @ features


def initial_alpha(features: torch.Tensor, labels: torch.Tensor, text: torch.Tensor) -> float:
    """``250 * mean_c(mean_{i in c} f_i . t_c)``, one value for every class (classes without support excluded)."""
    onehot = F.one_hot(labels, text.shape[0]).double()
    own = (onehot * (features.double() @ text.double().t())).sum(0)
    present = onehot.sum(0) > 0
    return float(INIT_ALPHA_SCALE * (own[present] / onehot.sum(0)[present]).mean())


class LPPHead(nn.Module):
    """``f @ W^T + b + alpha * (f @ T^T)`` on L2-normalised features. ``alpha_grad`` (the accumulated gradient
    of alpha), the two step sizes and the best-val state so far (``best_*``) are buffers, so a checkpoint says
    what the run chose and a resumed run continues exactly."""

    def __init__(self, text: torch.Tensor, bias_seed: int = 0):
        super().__init__()
        num_classes, dim = text.shape
        self.register_buffer("text", F.normalize(text.float(), dim=-1), persistent=False)
        self.weight = nn.Parameter(torch.zeros(num_classes, dim))
        bound = 1.0 / math.sqrt(dim)  # nn.Linear's default bias init
        gen = torch.Generator().manual_seed(int(bias_seed))
        self.bias = nn.Parameter(torch.empty(num_classes).uniform_(-bound, bound, generator=gen))
        self.alpha = nn.Parameter(torch.zeros(num_classes))
        self.register_buffer("alpha_grad", torch.zeros(num_classes))
        self.register_buffer("lr_w", torch.tensor(float("nan")))
        self.register_buffer("lr_alpha", torch.tensor(float("nan")))
        for name in ("weight", "bias", "alpha"):
            self.register_buffer(f"best_{name}", torch.zeros_like(getattr(self, name)))
        self.register_buffer("best_val", torch.tensor(-1.0))
        self.register_buffer("best_iteration", torch.tensor(-1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        f = F.normalize(features.float(), dim=-1)
        return f @ self.weight.t() + self.bias + self.alpha * (f @ self.text.t())

    @torch.no_grad()
    def initialise(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """W, alpha and both step sizes from the support set (``features`` raw or normalised, ``[N, D]``)."""
        f = F.normalize(features.float(), dim=-1)
        self.weight.copy_(class_sums(f, labels, self.weight.shape[0]))
        self.alpha.fill_(initial_alpha(f, labels, self.text))
        self.alpha_grad.zero_()
        self.lr_w.fill_(step_size_w(f))
        self.lr_alpha.fill_(step_size_alpha(f, self.text))

    @torch.no_grad()
    def alpha_step(self, iteration: int, every: int, accumulate: bool) -> None:
        """Take this iteration's gradient of alpha (added to the sum so far when ``accumulate``, as the public
        code, which never zeroes it); every ``every`` iterations, step alpha along it."""
        if self.alpha.grad is not None:
            if accumulate:
                self.alpha_grad += self.alpha.grad
            else:
                self.alpha_grad.copy_(self.alpha.grad)
            self.alpha.grad = None
        if (iteration + 1) % every == 0:
            self.alpha -= self.lr_alpha * self.alpha_grad

    @torch.no_grad()
    def keep_if_best(self, val_accuracy: float, iteration: int) -> None:
        """Remember this state when its val accuracy is the best so far; ties: the later iteration (public ">=")."""
        if val_accuracy >= float(self.best_val):
            for name in ("weight", "bias", "alpha"):
                getattr(self, f"best_{name}").copy_(getattr(self, name))
            self.best_val.fill_(val_accuracy)
            self.best_iteration.fill_(iteration)

    @torch.no_grad()
    def deploy_best(self) -> bool:
        """Put the remembered best state in place of the current one (False: none was kept)."""
        if int(self.best_iteration) < 0:
            return False
        for name in ("weight", "bias", "alpha"):
            getattr(self, name).copy_(getattr(self, f"best_{name}"))
        return True


def train_iteration(head: LPPHead, optimizer: torch.optim.Optimizer, features: torch.Tensor, labels: torch.Tensor,
                    iteration: int, alpha_every: int = 10, accumulate: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """One LP++ iteration on the full support set: a step of W and b, then alpha's (every ``alpha_every``).
    Returns the loss and the logits computed before the step (the public loop's order)."""
    logits = head(features)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    head.alpha_step(iteration, alpha_every, accumulate)
    return loss.detach(), logits.detach()


def lpp_recipe(dataset: str, shots: int) -> dict:
    """One setting for every dataset, shot count and backbone: 300 iterations (configs/base.yaml)."""
    return {"OPTIM.MAX_EPOCH": 300}


@TRAINER_REGISTRY.register()
class LPP(ClipTrainer):
    """LP++: W, b by full-batch SGD with a data-driven step, alpha by its own step; one iteration per epoch."""

    SPEC = declare(
        config_node="LPP", checkpoint_name="lpp", trainable=("alpha", "bias", "weight"),
        selects_on_val=True,  # the best-val iteration; the valfree track (DATASET.TRACK) deploys the last one
        # one augmented view of each support image, encoded once (public main.py)
        cache=CacheRequest(train_views="pool", pool=1),
        label="LP++", recipe_config="configs/trainers/LPP/rn50.yaml", recipe=lpp_recipe)
    # The public code's prompts: ImageNet and its variants the 7 select templates, others their own.
    template_policy = dict(imagenet=SELECT, others=OWN, imagenet_names=IMAGENET_FAMILY)

    @property
    def select_on_val(self) -> bool:
        return bool(self.method_cfg.SELECT_ON_VAL) and not self.valfree

    def build_head(self) -> nn.Module:
        text = self.text_classifier(normalize_each=True)
        return LPPHead(text, bias_seed=max(int(self.cfg.SEED), 0))

    def build_optimization(self, head: LPPHead):
        """SGD on W and b; its step is set from the support features when training starts (no schedule)."""
        return torch.optim.SGD([head.weight, head.bias], lr=0.0, momentum=float(self.method_cfg.MOMENTUM)), None

    def use_train_features(self) -> None:
        """One full batch of the support features per iteration; initialise the head from it."""
        if not self.cfg.FEATURE_CACHE.ENABLED:
            raise FeatureCacheError("LPP fits on cached support features (full batch): drop --no-cache / "
                                    "set FEATURE_CACHE.ENABLED True")
        super().use_train_features()
        pool = self.train_loader_x
        self.train_loader_x = FeatureLoader(pool.features, pool.labels, pool.labels.shape[0], shuffle=False,
                                            drop_last=False, device=self.device)
        self.head.initialise(pool.view(0), pool.labels)  # a resumed run then loads its own state over this
        for group in self._optims[self.spec.checkpoint_name].param_groups:
            group["lr"] = float(self.head.lr_w)
        logger.info("LP++: step of W, b %.4g; step of alpha %.4g; initial alpha %.4g", float(self.head.lr_w),
                    float(self.head.lr_alpha), float(self.head.alpha.detach()[0]))
        if self.select_on_val:
            # The public code selects on K val images per class (ImageNet: K extra train images per class).
            self.val_set = self.plain_features("val", validation_items(self, paper="kshot_val"))

    def forward_backward(self, batch) -> dict:
        x, label = self.parse_batch_train(batch)
        loss, logits = train_iteration(self.head, self._optims[self.spec.checkpoint_name], x, label, self.epoch,
                                       int(self.method_cfg.ALPHA_EVERY), bool(self.method_cfg.ACCUMULATE_ALPHA_GRAD))
        self.detect_anomaly(loss)
        return {"loss": loss.item(), "acc": (logits.argmax(-1) == label).float().mean().item() * 100.0}

    def after_epoch(self) -> None:
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        if freq > 0 and (self.epoch + 1) % freq == 0 and self.epoch + 1 < self.max_epoch:
            self.save_model(self.epoch, self.output_dir)
        if self.select_on_val:
            features, labels = self.val_set
            with torch.no_grad():
                accuracy = float((self.head(features).argmax(-1) == labels).float().mean()) * 100.0
            self.head.keep_if_best(accuracy, self.epoch)

    def after_train(self) -> None:
        """Deploy the best-val iteration (or the last), save it as the last epoch's and the best checkpoint, test."""
        logger.info("Finish training")
        deployed = self.head.deploy_best()
        if deployed:
            logger.info("Deploy iteration %d (best val accuracy %.2f%%)", int(self.head.best_iteration) + 1,
                        float(self.head.best_val))
        self.save_model(self.max_epoch - 1, self.output_dir, is_best=True,
                        val_result=float(self.head.best_val) if deployed else None)
        if not self.cfg.TEST.NO_TEST:
            self.test()
        self.close_writer()

    def metrics_extra(self) -> dict:
        head = self.head
        extra = {"lr_w": float(head.lr_w), "lr_alpha": float(head.lr_alpha), "momentum": float(self.method_cfg.MOMENTUM),
                 "alpha_every": int(self.method_cfg.ALPHA_EVERY),
                 "accumulate_alpha_grad": bool(self.method_cfg.ACCUMULATE_ALPHA_GRAD),
                 "select_on_val": self.select_on_val, "alpha_mean": float(head.alpha.detach().mean()),
                 "precision": "fp32 (public code: CLIP's dtype, fp16 on a GPU)",
                 "bias_init": "nn.Linear's uniform bound, seeded by SEED (public code: the global RNG)"}
        if int(head.best_iteration) >= 0:
            extra.update(best_iteration=int(head.best_iteration) + 1, best_val_accuracy=float(head.best_val))
        return extra
