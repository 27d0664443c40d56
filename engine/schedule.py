"""The learning-rate schedule every method trains with, under both engines (the project's own).

Stepped once per epoch after its last batch, with Dassl's warm-up (constant or linear, ``WARMUP_RECOUNT``)
and its values: with cosine and one constant warm-up epoch, epoch 0 trains at WARMUP_CONS_LR and epoch
e >= 1 at ``LR * (1 + cos(pi * (e - 1) / MAX_EPOCH)) / 2``. Closed form: its state is the epoch count.
Why not Dassl's: docs/engine.md.
"""
import math
from typing import List

import torch

AVAILABLE_SCHEDULERS = ("single_step", "multi_step", "cosine")


class EpochLRScheduler(torch.optim.lr_scheduler.LRScheduler):
    """``last_epoch`` counts completed ``step()`` calls: the index of the epoch about to run."""

    def __init__(self, optimizer: torch.optim.Optimizer, optim_cfg, last_epoch: int = -1):
        if optim_cfg.LR_SCHEDULER not in AVAILABLE_SCHEDULERS:
            raise ValueError(f"Unknown LR scheduler {optim_cfg.LR_SCHEDULER!r}; choose one of {AVAILABLE_SCHEDULERS}")
        if optim_cfg.LR_SCHEDULER == "multi_step" and not isinstance(optim_cfg.STEPSIZE, (list, tuple)):
            raise ValueError("multi_step needs OPTIM.STEPSIZE to be a list of epochs")
        if optim_cfg.WARMUP_EPOCH > 0 and optim_cfg.WARMUP_TYPE not in ("constant", "linear"):
            raise ValueError("OPTIM.WARMUP_TYPE must be 'constant' or 'linear'")
        self.optim_cfg = optim_cfg
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        return [self.lr_at(base_lr, self.last_epoch) for base_lr in self.base_lrs]

    def lr_at(self, base_lr: float, epoch: int) -> float:
        cfg = self.optim_cfg
        warmup = cfg.WARMUP_EPOCH if cfg.WARMUP_EPOCH > 0 else 0
        if epoch < warmup:
            if cfg.WARMUP_TYPE == "constant":
                return cfg.WARMUP_CONS_LR
            return cfg.WARMUP_MIN_LR + (base_lr - cfg.WARMUP_MIN_LR) * epoch / warmup
        epoch = epoch - warmup if cfg.WARMUP_RECOUNT else epoch  # the main schedule's epoch
        if cfg.LR_SCHEDULER == "cosine":
            return base_lr * (0.5 * (1.0 + math.cos(math.pi * epoch / float(cfg.MAX_EPOCH))))
        if cfg.LR_SCHEDULER == "single_step":
            stepsize = cfg.STEPSIZE[0] if isinstance(cfg.STEPSIZE, (list, tuple)) else cfg.STEPSIZE
            return base_lr * cfg.GAMMA ** (epoch // (stepsize if stepsize > 0 else cfg.MAX_EPOCH))
        return base_lr * cfg.GAMMA ** sum(1 for m in cfg.STEPSIZE if epoch >= m)  # multi_step

    def _get_closed_form_lr(self) -> List[float]:
        return self.get_lr()

    def state_dict(self) -> dict:
        """Plain values only (no config object), so checkpoints load with ``weights_only=True``."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "optim_cfg")}


def build_lr_scheduler(optimizer: torch.optim.Optimizer, optim_cfg) -> EpochLRScheduler:
    return EpochLRScheduler(optimizer, optim_cfg)
