"""``SimpleTrainer`` / ``TrainerX``: the epoch loop, evaluation, checkpoints and resume (Dassl semantics).

A method subclasses ``TrainerX`` and provides ``build_model()`` (registering its modules with
``register_model``) and ``forward_backward(batch)``; like Dassl, the method steps the LR schedule
after the last batch of an epoch (``update_lr``), so one trainer file runs on both engines.
"""
import datetime
import logging
import os
import time
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional

import torch
from torch import nn

from engine.errors import CheckpointError

# The fingerprint refusing another config's checkpoint lives with the run identity.
from engine.identity import RESUME_IGNORED_KEYS, config_fingerprint  # noqa: F401

from .checkpoint import load_checkpoint, save_checkpoint
from .data import DataManager
from .evaluator import build_evaluator
from .registry import TRAINER_REGISTRY
from .utils import mkdir_if_missing

logger = logging.getLogger(__name__)


class AverageMeter:
    def __init__(self):
        self.val = self.sum = self.avg = 0.0
        self.count = 0

    def update(self, val: float, n: int = 1) -> None:
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n
        self.avg = self.sum / self.count


class MetricMeter:
    def __init__(self):
        self.meters = defaultdict(AverageMeter)

    def update(self, input_dict: Dict[str, float]) -> None:
        for k, v in input_dict.items():
            self.meters[k].update(v.item() if isinstance(v, torch.Tensor) else v)

    def __str__(self) -> str:
        return " ".join(f"{k} {m.val:.4f} ({m.avg:.4f})" for k, m in self.meters.items())


class SimpleTrainer:
    """Model registry, checkpointing, the train/test loop skeleton."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._models: "OrderedDict[str, nn.Module]" = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self._writer = None
        if torch.cuda.is_available() and cfg.USE_CUDA:
            self.device = torch.device("cuda")
        else:
            self.device = torch.device("cpu")
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -float("inf")

    # ---- model registry -------------------------------------------------------------------
    def register_model(self, name: str = "model", model: Optional[nn.Module] = None, optim=None, sched=None):
        if "_models" not in self.__dict__:
            raise AttributeError("Call super().__init__() before register_model()")
        if name in self._models:
            raise KeyError(f"Model {name!r} is already registered")
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None) -> List[str]:
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            if name not in names_real:
                raise KeyError(f"Unknown model {name!r}; registered: {names_real}")
        return names

    def set_model_mode(self, mode: str = "train", names=None) -> None:
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    def get_current_lr(self, names=None) -> float:
        name = self.get_model_names(names)[0]
        return self._optims[name].param_groups[0]["lr"]

    def update_lr(self, names=None) -> None:
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise FloatingPointError(f"Loss is {loss.item()} at epoch {self.epoch + 1}; lower OPTIM.LR")

    def model_zero_grad(self, names=None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names=None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss: torch.Tensor, names=None) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)

    # ---- checkpoints ----------------------------------------------------------------------
    def checkpoint_metadata(self) -> dict:
        """Extra entries saved in every checkpoint; trainers add method/backbone/classnames."""
        return {"config_fingerprint": config_fingerprint(self.cfg), "config": self.cfg.dump()}

    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result=None,
                   model_name: str = "") -> None:
        for name in self.get_model_names():
            model_dict = self._models[name].state_dict()
            optim = self._optims[name]
            sched = self._scheds[name]
            state = {
                "state_dict": model_dict,
                "epoch": epoch + 1,
                "optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None,
                "val_result": val_result,
            }
            state.update(self.checkpoint_metadata())
            save_checkpoint(state, os.path.join(directory, name), is_best=is_best, model_name=model_name)

    def resume_model_if_exist(self, directory: str) -> int:
        """Continue from the newest checkpoint in ``directory`` when every model has one.

        A checkpoint made with a different training config is refused with a message rather than
        silently resumed (Dassl resumes whatever it finds).
        """
        names = self.get_model_names()
        if not all(os.path.isfile(os.path.join(directory, n, "checkpoint")) for n in names):
            return 0
        logger.info("Found checkpoints in %s; resuming", directory)
        start_epoch = 0
        for name in names:
            path = os.path.join(directory, name)
            with open(os.path.join(path, "checkpoint")) as f:
                fname = f.readline().strip()
            ckpt = load_checkpoint(os.path.join(path, fname))
            theirs = ckpt.get("config_fingerprint")
            if theirs is not None and theirs != config_fingerprint(self.cfg):
                raise CheckpointError(
                    f"{os.path.join(path, fname)} was written by a run with a different config. Use a new "
                    "--output-dir, or delete that folder to start over.")
            self._models[name].load_state_dict(ckpt["state_dict"])
            if self._optims[name] is not None and ckpt.get("optimizer") is not None:
                self._optims[name].load_state_dict(ckpt["optimizer"])
            if self._scheds[name] is not None and ckpt.get("scheduler") is not None:
                self._scheds[name].load_state_dict(ckpt["scheduler"])
            start_epoch = ckpt["epoch"]
            logger.info("Loaded %s (epoch %d)", fname, start_epoch)
        return start_epoch

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        """Load weights for evaluation from ``directory/<model>/model.pth.tar-<epoch>`` (or model-best)."""
        if not directory:
            raise CheckpointError("--model-dir is required to load a model (e.g. with --eval-only)")
        fname = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            ckpt = load_checkpoint(os.path.join(directory, name, fname))
            self.load_state_for_eval(name, ckpt)
            logger.info("Loaded model weights from %s (epoch %s)", os.path.join(directory, name, fname),
                        ckpt.get("epoch"))

    def load_state_for_eval(self, name: str, checkpoint: dict) -> None:
        """Load a checkpoint's ``state_dict`` strictly; trainers override to adapt foreign layouts."""
        self._models[name].load_state_dict(checkpoint["state_dict"])

    # ---- loop -----------------------------------------------------------------------------
    def init_writer(self, log_dir: str) -> None:
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning("tensorboard is not installed; scalars are not written")
                return
            self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write_scalar(self, tag: str, scalar_value: float, global_step: Optional[int] = None) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch: Optional[int] = None, max_epoch: Optional[int] = None) -> None:
        self.start_epoch = self.start_epoch if start_epoch is None else start_epoch
        self.max_epoch = self.max_epoch if max_epoch is None else max_epoch
        self.before_train()
        for epoch in range(self.start_epoch, self.max_epoch):
            self.epoch = epoch
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
        self.after_train()

    def before_train(self) -> None:
        directory = self.cfg.RESUME or self.cfg.OUTPUT_DIR
        self.start_epoch = self.resume_model_if_exist(directory)
        writer_dir = os.path.join(self.output_dir, "tensorboard")
        mkdir_if_missing(writer_dir)
        self.init_writer(writer_dir)
        self.time_start = time.time()

    def after_train(self) -> None:
        logger.info("Finish training")
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                logger.info("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                logger.info("Deploy the last-epoch model")
            self.test()
        elapsed = str(datetime.timedelta(seconds=round(time.time() - self.time_start)))
        logger.info("Elapsed: %s", elapsed)
        self.close_writer()

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        last_epoch = (self.epoch + 1) == self.max_epoch
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        meet_checkpoint_freq = freq > 0 and (self.epoch + 1) % freq == 0
        if not self.cfg.TEST.NO_TEST and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            is_best = curr_result > self.best_result
            if is_best:
                self.best_result = curr_result
                self.save_model(self.epoch, self.output_dir, val_result=curr_result,
                                model_name="model-best.pth.tar")
        if meet_checkpoint_freq or last_epoch:
            self.save_model(self.epoch, self.output_dir)

    def run_epoch(self) -> None:
        raise NotImplementedError

    def forward_backward(self, batch) -> Dict[str, float]:
        raise NotImplementedError

    def build_data_loader(self) -> None:
        raise NotImplementedError

    def build_model(self) -> None:
        raise NotImplementedError

    def parse_batch_test(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def model_inference(self, input):
        return self.model(input)

    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        """Evaluate on ``split`` (default ``TEST.SPLIT``); logs ``* accuracy: X%`` and returns accuracy."""
        self.set_model_mode("eval")
        self.evaluator.reset()
        split = split or self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"
            data_loader = self.test_loader
        logger.info("Evaluate on the *%s* set", split)
        for batch in data_loader:
            input, label = self.parse_batch_test(batch)
            self.evaluator.process(self.model_inference(input), label)
        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        self.last_results = dict(results, split=split)
        return list(results.values())[0]


class TrainerX(SimpleTrainer):
    """A trainer over labelled data only (``train_loader_x``)."""

    def build_data_loader(self) -> None:
        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)
        if self.num_batches == 0:
            raise RuntimeError("The training loader is empty: no training images")
        end = time.time()
        for batch_idx, batch in enumerate(self.train_loader_x):
            self.batch_idx = batch_idx
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)
            meet_freq = (self.batch_idx + 1) % self.cfg.TRAIN.PRINT_FREQ == 0
            only_few_batches = self.num_batches < self.cfg.TRAIN.PRINT_FREQ
            if meet_freq or only_few_batches:
                remaining = (self.num_batches - self.batch_idx - 1
                             + (self.max_epoch - self.epoch - 1) * self.num_batches)
                eta = str(datetime.timedelta(seconds=int(batch_time.avg * remaining)))
                logger.info("epoch [%d/%d] batch [%d/%d] time %.3f (%.3f) data %.3f (%.3f) %s lr %.4e eta %s",
                            self.epoch + 1, self.max_epoch, self.batch_idx + 1, self.num_batches,
                            batch_time.val, batch_time.avg, data_time.val, data_time.avg, losses,
                            self.get_current_lr(), eta)
            n_iter = self.epoch * self.num_batches + self.batch_idx
            for name, meter in losses.meters.items():
                self.write_scalar("train/" + name, meter.avg, n_iter)
            self.write_scalar("train/lr", self.get_current_lr(), n_iter)
            end = time.time()


def build_trainer(cfg):
    """Instantiate ``TRAINER_REGISTRY[cfg.TRAINER.NAME](cfg)``."""
    logger.info("Loading trainer: %s", cfg.TRAINER.NAME)
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)
