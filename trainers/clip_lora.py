"""CLIP-LoRA (Zanella & Ben Ayed, CVPRW 2024): rank-2 LoRA on q, k, v of every attention layer of both encoders.

One setting for every dataset and shot count, without validation (MaxZanella/CLIP-LoRA@358f0d7:
``run_utils.get_arguments`` defaults, ``lora.run_lora``, ``loralib/layers.py``). Recipe, iterations on the epoch
loop and deviations: docs/methods/clip-lora.md.
"""
import itertools
import logging
import math

import torch
from torch import nn

from engine import TRAINER_REGISTRY, build_optimizer
from trainers.base import ClipTrainer, add_method_config
from trainers.heads import EvalTextCache, cosine_logits
from trainers.lora_layers import LoRAError, add_lora
from trainers.spec import declare
from trainers.text_classifier import prompts_for

logger = logging.getLogger(__name__)

TEMPLATE = "a photo of a {}."  # every dataset (the original's per-dataset templates are commented out)
ENCODERS = {"both": ("image", "text"), "vision": ("image",), "text": ("text",)}  # the original's --encoder
ETA_MIN = 1e-6  # the cosine schedule's floor (the original's CosineAnnealingLR eta_min)


def add_config(cfg) -> None:
    add_method_config(cfg, "CLIP_LORA",
                      PREC="amp",              # fp16 autocast + gradient scaling on CUDA, as the original
                      ENCODER="both",          # both | vision | text
                      PARAMS=["q", "k", "v"],  # projections with LoRA (q, k, v, o)
                      RANK=2,
                      ALPHA=1.0,
                      DROPOUT=0.25,
                      ITERS_PER_SHOT=0,        # steps = this x shots (the recipe: 500); 0: OPTIM.MAX_EPOCH
                      LOGIT_SCALE=100.0)       # the original's fixed scale


class LoRAClassifier(EvalTextCache):
    """Cosine classifier of image features against the text encoder's features of one prompt per class.

    Holds the adapters (``image``/``text``: one ``ModuleDict`` of projection -> LoRA per block), so they are what
    the method trains and saves; the backbone they live in is a plain attribute.
    """

    def __init__(self, backbone, tokens: torch.Tensor, adapters: dict, logit_scale: float):
        super().__init__()
        self.__dict__["backbone"] = backbone
        for tower, layers in adapters.items():
            self.add_module(tower, layers)
        self.text_adapted = "text" in adapters
        self.logit_scale = float(logit_scale)
        self.register_buffer("tokens", tokens, persistent=False)
        self._frozen_text = None if self.text_adapted else backbone.encode_tokens(tokens)  # frozen encoder: once

    def text_features(self) -> torch.Tensor:
        if not self.text_adapted:
            return self._frozen_text
        # Through the adapters: every training step; once per evaluation (EvalTextCache).
        return self.cached_text(lambda: self.backbone.encode_tokens(self.tokens, grad=torch.is_grad_enabled()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.text_features(), self.logit_scale)


class _FirstBatches:
    """The first ``n`` batches of a loader: the last epoch of an iteration-counted run stops mid-epoch."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)


@TRAINER_REGISTRY.register()
class CLIP_LoRA(ClipTrainer):  # noqa: N801  (the method's name)
    """CLIP-LoRA; only the LoRA matrices train."""

    SPEC = declare(
        config_node="CLIP_LORA", checkpoint_name="lora",
        trainable=None, trainable_pattern=r"(image|text)\.\d+\.[qkvo]\.lora_[AB]",  # one pair per layer
        adapted_encoders=("image", "text"), lr_step_every_batch=True,
        class_agnostic=True,  # the LoRA matrices do not depend on the class list
        label="CLIP-LoRA",
        # one setting for every dataset and shot count (the config file holds it)
        recipe_config="configs/trainers/CLIP_LoRA/vit_b16.yaml")
    keep_last_batch = True  # also on cached features (text-only LoRA)

    def adapted_encoders(self):
        encoder = self.method_cfg.ENCODER
        if encoder not in ENCODERS:
            raise LoRAError(f"TRAINER.CLIP_LORA.ENCODER must be one of {sorted(ENCODERS)}, not {encoder!r}")
        return ENCODERS[encoder]

    def dataset_templates(self):
        return (TEMPLATE,)

    def build_data_loader(self) -> None:
        super().build_data_loader()
        loader = self.train_loader_x
        # The original keeps the last partial batch: ceil(N / batch) steps per epoch.
        self.train_loader_x = torch.utils.data.DataLoader(
            loader.dataset, batch_size=loader.batch_size, shuffle=True, num_workers=loader.num_workers,
            drop_last=False, pin_memory=loader.pin_memory)

    def build_head(self) -> nn.Module:
        mcfg = self.method_cfg
        model = self.clip.model
        encoders = self.adapted_encoders()
        towers = {"image": getattr(model.visual, "transformer", None), "text": getattr(model, "transformer", None)}
        if "image" in encoders and towers["image"] is None:
            raise LoRAError(f"CLIP-LoRA adapts the attention layers of ViT image encoders; {self.cfg.MODEL.BACKBONE.NAME} "
                            "has none (a ResNet). Pass TRAINER.CLIP_LORA.ENCODER text to adapt its text encoder only")
        settings = ([str(p) for p in mcfg.PARAMS], int(mcfg.RANK), float(mcfg.ALPHA), float(mcfg.DROPOUT))
        adapters = {name: add_lora(towers[name], *settings) for name in encoders}
        tokens = self.clip.tokenize(prompts_for(self.classnames, TEMPLATE))
        logger.info("CLIP-LoRA: rank %d, alpha %g, dropout %g on %s of every block of the %s encoder(s)",
                    *settings[1:], "/".join(settings[0]), " and ".join(encoders))
        return LoRAClassifier(self.clip, tokens, adapters, float(mcfg.LOGIT_SCALE))

    # ---- iterations -------------------------------------------------------------------------------------
    def build_optimization(self, head: nn.Module):
        """AdamW from the config, cosine to 1e-6 over all steps (stepped every batch); sets the epoch count."""
        self.batches_per_epoch = len(self.train_loader_x)
        per_shot, shots = int(self.method_cfg.ITERS_PER_SHOT), int(self.cfg.DATASET.NUM_SHOTS)
        if per_shot > 0 and shots < 1:
            raise LoRAError("CLIP-LoRA counts its iterations per shot (TRAINER.CLIP_LORA.ITERS_PER_SHOT x shots): set "
                            "DATASET.NUM_SHOTS, or ITERS_PER_SHOT 0 to train OPTIM.MAX_EPOCH epochs")
        self.steps = per_shot * shots if per_shot > 0 else self.batches_per_epoch * max(1, int(self.cfg.OPTIM.MAX_EPOCH))
        self.max_epoch = math.ceil(self.steps / self.batches_per_epoch)
        logger.info("CLIP-LoRA: %d iterations = %d epochs of %d batches%s", self.steps, self.max_epoch,
                    self.batches_per_epoch, "" if self.steps % self.batches_per_epoch == 0 else " (the last one cut)")
        optim = build_optimizer(head, self.cfg.OPTIM)
        return optim, torch.optim.lr_scheduler.CosineAnnealingLR(optim, self.steps, eta_min=ETA_MIN)

    def progress_iterations(self) -> int:
        return self.steps  # the bar counts iterations, the unit of the recipe

    def run_epoch(self) -> None:
        left = self.steps - self.epoch * self.batches_per_epoch
        if left >= len(self.train_loader_x):
            return super().run_epoch()
        full = self.train_loader_x
        self.train_loader_x = _FirstBatches(full, left)
        try:
            super().run_epoch()
        finally:
            self.train_loader_x = full

    def metrics_extra(self) -> dict:
        mcfg = self.method_cfg
        return {"iterations": self.steps, "iterations_per_epoch": self.batches_per_epoch, "epochs": self.max_epoch,
                "adapted_encoders": list(self.adapted_encoders()), "lora_params": list(mcfg.PARAMS),
                "rank": int(mcfg.RANK), "alpha": float(mcfg.ALPHA), "dropout": float(mcfg.DROPOUT),
                "trainable_parameters": sum(p.numel() for p in self.head.parameters() if p.requires_grad),
                # the original stores the frozen weights in fp16; here they stay fp32 (fp16 autocast with PREC amp)
                "precision": f"{'fp32' if self.scaler is None and self.precision == 'amp' else self.precision} "
                             "(frozen weights fp32; original: fp16 weights)"}
