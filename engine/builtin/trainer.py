"""``SimpleTrainer`` / ``TrainerX`` of the built-in engine: Dassl's trainer skeleton (model registry,
device, data loaders), with the project's ``TrainingLoop`` (the same under Dassl) as its loop.
"""
import logging
from collections import OrderedDict
from typing import List, Optional

import torch
from torch import nn

from engine.evaluation import build_evaluator
from engine.loop import TrainingLoop

from .data import DataManager
from .registry import TRAINER_REGISTRY

logger = logging.getLogger(__name__)


class SimpleTrainer(TrainingLoop):
    """Model registry, device, data loaders, model and evaluator, built in Dassl's order."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._models: "OrderedDict[str, nn.Module]" = OrderedDict()
        self._optims, self._scheds = OrderedDict(), OrderedDict()
        self.device = torch.device("cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu")
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -float("inf")

    def register_model(self, name: str = "model", model: Optional[nn.Module] = None, optim=None, sched=None):
        if "_models" not in self.__dict__:
            raise AttributeError("Call super().__init__() before register_model()")
        if name in self._models:
            raise KeyError(f"Model {name!r} is already registered")
        self._models[name], self._optims[name], self._scheds[name] = model, optim, sched

    def get_model_names(self, names=None) -> List[str]:
        names_real = list(self._models)
        if names is None:
            return names_real
        names = [names] if isinstance(names, str) else list(names)
        unknown = [name for name in names if name not in names_real]
        if unknown:
            raise KeyError(f"Unknown model {unknown[0]!r}; registered: {names_real}")
        return names

    def build_data_loader(self) -> None:
        raise NotImplementedError

    def build_model(self) -> None:
        raise NotImplementedError

    def forward_backward(self, batch):
        raise NotImplementedError


class TrainerX(SimpleTrainer):
    """A trainer over labelled data only (``train_loader_x``)."""

    def build_data_loader(self, dataset_wrapper=None) -> None:
        self.use_data_manager(DataManager(self.cfg, dataset_wrapper=dataset_wrapper))


def build_trainer(cfg):
    logger.info("Loading trainer: %s", cfg.TRAINER.NAME)
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)
