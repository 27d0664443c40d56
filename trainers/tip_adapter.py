"""Tip-Adapter (training-free) and Tip-Adapter-F (cache keys fine-tuned), Zhang et al., ECCV 2022.

Zero-shot logits plus a key-value cache of the few-shot train set (keys: averaged augmented views), alpha/beta
searched on val. Public code: gaopengcuhk/Tip-Adapter@d0e2d6f, ``configs/<dataset>.yaml``, ``utils.py:search_hp``.
Formula, grids and deviations: docs/methods/tip-adapter.md.
"""
import copy
import logging
import math
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY, CheckpointError, build_transform
from engine.checkpoint import BEST_MODEL
from trainers.base import ClipTrainer, add_method_config, validation_items
from trainers.heads import CosineClassifier
from trainers.spec import CacheRequest, KeyViews, declare
from trainers.templates import IMAGENET_FAMILY, OWN, SELECT

logger = logging.getLogger(__name__)

# The valfree track (DATASET.TRACK valfree) reads no validation data: alpha/beta are the Tip-Adapter paper's
# defaults for every dataset and shot count (unless INIT_ALPHA/INIT_BETA are set), and Tip-Adapter-F deploys
# its last epoch.
VALFREE_ALPHA, VALFREE_BETA = 1.0, 5.5

# The public per-dataset configs (gaopengcuhk/Tip-Adapter@d0e2d6f, configs/*.yaml), by DATASET.NAME:
# (beta max, alpha max) of the search, and (init beta, init alpha). The ImageNet variants and datasets
# without a public config use ImageNet's.
PUBLIC_CONFIGS = {
    "Caltech101": ((12.0, 5.0), (1.0, 3.0)),
    "DescribableTextures": ((13.0, 13.0), (1.0, 2.0)),
    "EuroSAT": ((12.0, 10.0), (1.0, 2.0)),
    "FGVCAircraft": ((30.0, 30.0), (1.0, 5.0)),
    "Food101": ((10.0, 10.0), (1.0, 1.17)),
    "ImageNet": ((7.0, 3.0), (1.0, 1.17)),
    "OxfordFlowers": ((50.0, 50.0), (1.0, 10.0)),
    "OxfordPets": ((7.0, 3.0), (1.0, 1.17)),
    "StanfordCars": ((20.0, 10.0), (1.0, 3.0)),
    "SUN397": ((12.0, 10.0), (1.0, 1.17)),
    "UCF101": ((7.0, 3.0), (1.0, 3.0)),
}


def add_config(cfg) -> None:
    for node, extra in (("TIP_ADAPTER", {}), ("TIP_ADAPTER_F", {"ADAMW_EPS": 1e-4})):
        add_method_config(cfg, node, PREC="fp16",
                          AUGMENT_EPOCH=10,       # augmented views averaged into each cache key
                          # None: the dataset's public value (PUBLIC_CONFIGS); a number overrides it.
                          INIT_ALPHA=None,        # residual ratio (used when SEARCH_HP is off, and while Tip-F trains)
                          INIT_BETA=None,         # sharpness
                          SEARCH_HP=True,         # search alpha/beta on val
                          SEARCH_SCALE=None,      # [beta max, alpha max]
                          SEARCH_STEP=[200, 20],  # [beta steps, alpha steps]
                          **extra)


def search_grid(scale: float, steps: int) -> np.ndarray:
    """``steps`` values from 0.1 up to (not including) ``scale``, evenly spaced (the public grid)."""
    return np.array([0.1 + i * (scale - 0.1) / steps for i in range(steps)], dtype=np.float64)


class TipAdapterHead(nn.Module):
    """Zero-shot logits plus ``alpha`` times the cache's affinity-weighted label votes."""

    def __init__(self, text_weights: torch.Tensor, cache_keys: torch.Tensor, cache_labels: torch.Tensor,
                 alpha: float, beta: float, logit_scale: float, learnable_keys: bool = False):
        super().__init__()
        self.zero_shot = CosineClassifier(text_weights, logit_scale)  # nothing saved: rebuilt from text
        keys = cache_keys.detach().float().clone()
        if learnable_keys:
            self.cache_keys = nn.Parameter(keys)
        else:
            self.register_buffer("cache_keys", keys)
        self.register_buffer("cache_labels", cache_labels.long().clone())
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.register_buffer("beta", torch.tensor(float(beta)))

    @torch.no_grad()
    def set_cache(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Replace the cache (its size is the new one's), keeping the keys trainable if they are."""
        # ``.data``: trainable keys stay the optimiser's parameter.
        self.cache_keys.data = keys.to(self.cache_labels.device, torch.float32).clone()
        self.cache_labels = labels.to(self.cache_labels.device).clone()

    def affinity(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.float(), dim=-1) @ self.cache_keys.t()

    def cache_logits(self, affinity: torch.Tensor, beta) -> torch.Tensor:
        kernel = torch.exp(-beta * (1.0 - affinity))
        out = kernel.new_zeros(kernel.shape[0], self.zero_shot.weights.shape[0])
        return out.index_add(1, self.cache_labels, kernel)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.zero_shot(features) + self.alpha * self.cache_logits(self.affinity(features), self.beta)

    @torch.no_grad()
    def search(self, features: torch.Tensor, labels: torch.Tensor, betas: Sequence[float],
               alphas: Sequence[float]) -> Tuple[float, float, float]:
        """Grid search of (alpha, beta) by accuracy on the given (val) features; ties keep the first pair
        in beta-major order, as the public loop does. Returns ``(alpha, beta, accuracy in %)``."""
        clip = self.zero_shot(features)
        affinity = self.affinity(features)
        alphas_t = torch.as_tensor(np.asarray(alphas), dtype=torch.float32, device=clip.device)
        acc = np.zeros((len(betas), len(alphas)))
        for i, beta in enumerate(betas):
            cache = self.cache_logits(affinity, float(beta))
            logits = clip.unsqueeze(0) + alphas_t.view(-1, 1, 1) * cache.unsqueeze(0)  # [A, N, C]
            acc[i] = (logits.argmax(dim=-1) == labels.unsqueeze(0)).float().mean(dim=1).cpu().numpy() * 100.0
        i, j = np.unravel_index(int(np.argmax(acc)), acc.shape)  # first maximum, beta-major
        return float(alphas[j]), float(betas[i]), float(acc[i, j])

    @torch.no_grad()
    def set_hyperparameters(self, alpha: float, beta: float) -> None:
        self.alpha.fill_(alpha)
        self.beta.fill_(beta)


# The cache keys: each averages AUGMENT_EPOCH views under the published augmentation (random resized crop scale
# (0.5, 1), flip), drawn from a seed stream apart from the training views' (same run seed).
KEYS = KeyViews(crop_scale=(0.5, 1.0), count_key="AUGMENT_EPOCH", seed_offset=1_000_003)


@TRAINER_REGISTRY.register()
class TipAdapter(ClipTrainer):
    """Training-free Tip-Adapter: the cache is built once, alpha/beta are searched on val."""

    SPEC = declare(
        config_node="TIP_ADAPTER", checkpoint_name="tip_adapter", training_free=True,
        selects_on_val=True,  # alpha/beta (Tip-F: also the epoch) chosen on val; fixed in the valfree track
        cache=CacheRequest(train_views="none", keys=KEYS),  # no training views: the keys have their own
        label="Tip-Adapter", table_order=50,
        # Everything is in the file; the per-dataset search range and initial alpha/beta are PUBLIC_CONFIGS.
        recipe_config="configs/trainers/TipAdapter/rn50.yaml")
    template_policy = dict(imagenet=SELECT, others=OWN, imagenet_names=IMAGENET_FAMILY)

    def load_state_for_eval(self, name: str, checkpoint: dict) -> None:
        state = checkpoint.get("state_dict", {})
        own = self._models[name].state_dict()
        if set(state) != set(own):
            raise CheckpointError(f"Not a {type(self).__name__} checkpoint: keys {sorted(state)}, expected {sorted(own)}")
        if state["cache_keys"].shape[1] != own["cache_keys"].shape[1]:
            raise CheckpointError(f"The checkpoint's cache keys have dimension {state['cache_keys'].shape[1]}, "
                                  f"this backbone's features {own['cache_keys'].shape[1]}")
        # The cache size is the checkpoint's (its few-shot train set), whatever this run sampled.
        self._models[name].set_cache(state["cache_keys"], state["cache_labels"])
        super().load_state_for_eval(name, checkpoint)

    def cache_transform(self):
        return build_transform(self.spec.cache.keys.input_config(self.cfg), is_train=True)

    def hyperparameters(self) -> dict:
        """The run's search range and initial alpha/beta: the config's, or the dataset's public values."""
        mcfg, name = self.method_cfg, self.cfg.DATASET.NAME
        if name not in PUBLIC_CONFIGS:
            logger.info("Tip-Adapter: no public config for %s; using ImageNet's search range and initial "
                        "values", name)
            name = "ImageNet"
        (beta_max, alpha_max), (init_beta, init_alpha) = PUBLIC_CONFIGS[name]
        if self.valfree:
            init_beta, init_alpha = VALFREE_BETA, VALFREE_ALPHA
        scale = mcfg.SEARCH_SCALE
        if scale is not None and len(scale) != 2:
            raise ValueError(f"TRAINER.{self.spec.config_node}.SEARCH_SCALE must be [beta max, alpha max], got {list(scale)}")
        return {"search_scale": [float(x) for x in scale] if scale is not None else [beta_max, alpha_max],
                "search_step": [int(x) for x in mcfg.SEARCH_STEP],
                "init_alpha": float(mcfg.INIT_ALPHA) if mcfg.INIT_ALPHA is not None else init_alpha,
                "init_beta": float(mcfg.INIT_BETA) if mcfg.INIT_BETA is not None else init_beta}

    def key_seed(self) -> int:
        return self.spec.cache.keys.seed(self.cfg.SEED)

    def build_head(self) -> nn.Module:
        """The head with an empty cache: the keys are encoded when training starts (``build_cache``), so an
        evaluation-only run, whose keys come from its checkpoint, encodes no training views."""
        hp = self.hyperparameters()
        text = self.text_classifier(normalize_each=True)
        keys, labels = torch.zeros(0, text.shape[1]), torch.zeros(0, dtype=torch.long)
        return TipAdapterHead(text, keys, labels, hp["init_alpha"], hp["init_beta"], self.clip.logit_scale,
                              learnable_keys="cache_keys" in self.spec.trainable)

    @torch.no_grad()
    def build_cache(self) -> None:
        """Keys: the train images' features averaged over ``AUGMENT_EPOCH`` augmented views, then normalised."""
        head = self.head
        if head.cache_keys.shape[0]:
            return
        views = self.spec.cache.keys.views(self.method_cfg)
        entry = self.feature_source.get("train", self.dm.dataset.train_x, self.cache_transform(), views,
                                     self.key_seed())
        head.set_cache(F.normalize(entry["features"].float().mean(dim=0), dim=-1), entry["labels"])
        logger.info("Tip-Adapter cache: %d keys from %d augmented views each", len(head.cache_keys), views)

    def use_train_features(self) -> None:
        self.build_cache()
        super().use_train_features()

    def validation_features(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Val features (never test), computed once per run."""
        if getattr(self, "_val_features", None) is None:
            self._val_features = self.plain_features("val", validation_items(self, paper="val_split"))
        return self._val_features

    def fit(self) -> None:
        """Search alpha/beta on val (Tip-Adapter-F: after training, on the deployed keys)."""
        hp = self.hyperparameters()
        if not self.method_cfg.SEARCH_HP or self.valfree:
            logger.info("Tip-Adapter: no search%s; alpha %.3f, beta %.3f", " (valfree track)" * self.valfree,
                        hp["init_alpha"], hp["init_beta"])
            return
        betas = search_grid(hp["search_scale"][0], hp["search_step"][0])
        alphas = search_grid(hp["search_scale"][1], hp["search_step"][1])
        features, labels = self.validation_features()
        alpha, beta, acc = self.head.search(features, labels, betas, alphas)
        self.head.set_hyperparameters(alpha, beta)
        logger.info("Tip-Adapter: searched on val -> alpha %.4f, beta %.4f (val accuracy %.2f%%)", alpha, beta, acc)

    def metrics_extra(self) -> dict:
        extra = {"alpha": float(self.head.alpha), "beta": float(self.head.beta), **self.hyperparameters(),
                 "search_hp": bool(self.method_cfg.SEARCH_HP) and not self.valfree, "augment_epoch": int(self.method_cfg.AUGMENT_EPOCH)}
        if getattr(self, "best_epoch", None) is not None:
            extra["best_epoch"] = int(self.best_epoch) + 1
            extra["epoch_selected_on"] = "none (last epoch)" if self.valfree else "validation (public code: test)"
        return extra


def tip_adapter_f_recipe(dataset: str, shots: int) -> dict:
    """gaopengcuhk/Tip-Adapter@d0e2d6f configs/*.yaml: lr 1e-3, 20 epochs (EuroSAT 100). The per-dataset search
    range and initial alpha/beta are applied by the trainer (PUBLIC_CONFIGS)."""
    return {"OPTIM.LR": 1e-3, "OPTIM.MAX_EPOCH": 100 if dataset == "eurosat" else 20}


@TRAINER_REGISTRY.register()
class TipAdapterF(TipAdapter):
    """Tip-Adapter-F: the cache keys are fine-tuned; epoch and alpha/beta chosen on val (never
    ``TEST.FINAL_MODEL``: docs/methods/tip-adapter.md)."""

    SPEC = TipAdapter.SPEC.derive(
        config_node="TIP_ADAPTER_F", trainable=("cache_keys",), training_free=False, lr_step_every_batch=True,
        cache=CacheRequest(train_views="epoch", keys=KEYS), label="Tip-Adapter-F", table_order=60,
        recipe_config="configs/trainers/TipAdapterF/rn50.yaml", recipe=tip_adapter_f_recipe)
    best_val, best_epoch, best_state = -1.0, -1, None  # the best-val epoch so far (``after_epoch``)
    keep_last_batch = True

    def build_optimization(self, head):
        """AdamW with the published eps and a cosine schedule over iterations (no warm-up), ``ceil(N / B)``
        per epoch: the public loader keeps the last partial batch (``keep_last_batch``)."""
        cfg = self.cfg
        optim = torch.optim.AdamW([head.cache_keys], lr=cfg.OPTIM.LR, eps=self.method_cfg.ADAMW_EPS,
                                  weight_decay=cfg.OPTIM.WEIGHT_DECAY)
        per_epoch = math.ceil(len(self.dm.dataset.train_x) / int(cfg.DATALOADER.TRAIN_X.BATCH_SIZE))
        return optim, torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=max(1, int(cfg.OPTIM.MAX_EPOCH) * per_epoch))

    def after_epoch(self) -> None:
        last = (self.epoch + 1) == self.max_epoch
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        if last or (freq > 0 and (self.epoch + 1) % freq == 0):
            self.save_model(self.epoch, self.output_dir)
        if self.valfree:  # no validation data: the last epoch is deployed
            self.best_epoch = self.epoch
            return
        features, labels = self.validation_features()
        self.head.eval()
        with torch.no_grad():
            acc = float((self.head(features).argmax(dim=-1) == labels).float().mean().item() * 100.0)
        self.head.train()
        logger.info("Epoch %d: val accuracy %.2f%% (alpha %.3f, beta %.3f)", self.epoch + 1, acc,
                    float(self.head.alpha), float(self.head.beta))
        if acc > self.best_val:
            self.best_val, self.best_epoch = acc, self.epoch
            self.best_state = copy.deepcopy(self.head.state_dict())

    def extra_resume_state(self) -> dict:
        # The best epoch so far survives an interruption: a resumed run deploys the same keys.
        return {**super().extra_resume_state(),
                "tip_best": {"val": self.best_val, "epoch": self.best_epoch, "state": self.best_state}}

    def load_extra_resume_state(self, state: dict) -> None:
        super().load_extra_resume_state(state)
        best = state.get("tip_best")
        if best:
            self.best_val, self.best_epoch, self.best_state = best["val"], best["epoch"], best["state"]

    def after_train(self) -> None:
        logger.info("Finish training")
        if self.best_state is not None:
            self.head.load_state_dict(self.best_state)
            logger.info("Deploy the keys of epoch %d (best val accuracy %.2f%%)", self.best_epoch + 1, self.best_val)
        self.fit()
        self.save_model(max(self.best_epoch, 0), self.output_dir, val_result=self.best_val,
                        model_name=BEST_MODEL)
        if not self.cfg.TEST.NO_TEST:
            self.test()
        self.close_writer()
