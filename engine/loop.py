"""``TrainingLoop``: the project's epoch loop, evaluation, checkpoints and resume, under both engines.

A mixin placed before the engine's ``TrainerX`` in a trainer's bases: ``TrainerX`` (Dassl's or the built-in
one) supplies the model registry (``register_model``/``get_model_names``), the device and the data loaders;
this owns everything results depend on. Batches, schedule, checkpoints and resume: docs/engine.md; the
console and its progress bar: docs/console.md.
"""
import contextlib
import copy
import datetime
import logging
import os
import random
import signal
import threading
import time
from collections import defaultdict
from typing import Iterator, Optional

import numpy as np
import torch

from engine.checkpoint import (
    BEST_MODEL,
    RESUME_IGNORED_KEYS,
    config_fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from engine.errors import CheckpointError, RunInterrupted
from engine.fileio import atomic_write
from engine.logs import progress_bar

logger = logging.getLogger(__name__)

RESUME_FILE = "resume.pth.tar"


def add_loop_config(cfg) -> None:
    """Config keys of the loop that neither engine's defaults have."""
    if "RESUME_SAVE_S" not in cfg.TRAIN:
        # Seconds between writes of resume.pth.tar (0: after every epoch; -1: only on SIGINT/SIGTERM).
        cfg.TRAIN.RESUME_SAVE_S = 60


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into ``RunInterrupted`` (a loop saves its state on it) for the duration."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted(f"stopped by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def rng_state() -> dict:
    """Every global RNG, as tensors and plain values (so the file loads with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class AverageMeter:
    """The latest value and the running mean."""

    def __init__(self):
        self.val = self.sum = self.avg = 0.0
        self.count = 0

    def update(self, val: float) -> None:
        self.val = float(val)
        self.sum += self.val
        self.count += 1
        self.avg = self.sum / self.count


class TrainingLoop:
    """Mixin owning the loop, evaluation, checkpoints and resume (see the module docstring)."""

    _writer = None
    _snapshot: Optional[dict] = None
    _bar = None  # the training progress bar while ``train`` runs

    # ---- hooks for trainers ---------------------------------------------------------------
    def resume_ignored_keys(self) -> tuple:
        """Config keys a resumed checkpoint may differ in (they never change what is trained); trainers add theirs."""
        return RESUME_IGNORED_KEYS

    def resume_fingerprint(self) -> str:
        return config_fingerprint(self.cfg, self.resume_ignored_keys())

    def checkpoint_metadata(self) -> dict:
        """Extra entries saved in every checkpoint; trainers add method/backbone/classnames."""
        return {"config_fingerprint": self.resume_fingerprint(), "config": self.cfg.dump()}

    def load_state_for_eval(self, name: str, checkpoint: dict) -> None:
        """Load a checkpoint's ``state_dict`` strictly; trainers override to check and adapt layouts."""
        self._models[name].load_state_dict(checkpoint["state_dict"])

    def extra_resume_state(self) -> dict:
        """Trainer state beyond weights/optimizer/schedule that a resumed run needs (e.g. a best state)."""
        return {}

    def load_extra_resume_state(self, state: dict) -> None:
        pass

    def progress_iterations(self) -> Optional[int]:
        """The run's length for a method counted in iterations (its bar counts batches); None: epochs."""
        return None

    # ---- data -----------------------------------------------------------------------------
    def use_data_manager(self, dm) -> None:
        """Take loaders and dataset facts from a DataManager (the attributes Dassl's trainers expose)."""
        self.train_loader_x = dm.train_loader_x
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.lab2cname = dm.lab2cname
        self.dm = dm

    # ---- batches and models ---------------------------------------------------------------
    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    parse_batch_test = parse_batch_train

    def model_inference(self, x):
        return self.model(x)

    def set_model_mode(self, mode: str = "train", names=None) -> None:
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    def get_current_lr(self, names=None) -> float:
        return self._optims[self.get_model_names(names)[0]].param_groups[0]["lr"]

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

    def model_backward_and_update(self, loss: torch.Tensor, names=None) -> None:
        self.model_zero_grad(names)
        self.detect_anomaly(loss)
        loss.backward()
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    # ---- tensorboard ----------------------------------------------------------------------
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

    # ---- checkpoints ----------------------------------------------------------------------
    def _training_state(self, name: str) -> dict:
        """A model's weights, optimizer and schedule: what its checkpoints and the resume state hold."""
        optim, sched = self._optims[name], self._scheds[name]
        return {"state_dict": self._models[name].state_dict(),
                "optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None}

    def save_model(self, epoch: int, directory: str, is_best: bool = False, val_result=None,
                   model_name: str = "") -> None:
        for name in self.get_model_names():
            state = {**self._training_state(name), "epoch": epoch + 1, "val_result": val_result,
                     **self.checkpoint_metadata()}
            save_checkpoint(state, os.path.join(directory, name), is_best=is_best, model_name=model_name)

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        """Load weights for evaluation from ``directory/<model>/model.pth.tar-<epoch>`` (or model-best)."""
        if not directory:
            raise CheckpointError("--model-dir is required to load a model (e.g. with --eval-only)")
        fname = BEST_MODEL if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            path = os.path.join(directory, name, fname)
            ckpt = load_checkpoint(path)
            self.load_state_for_eval(name, ckpt)
            logger.info("Loaded model weights from %s (epoch %s)", path, ckpt.get("epoch"))

    def _check_fingerprint(self, ckpt: dict, path: str) -> None:
        theirs = ckpt.get("config_fingerprint")
        if theirs is not None and theirs != self.resume_fingerprint():
            raise CheckpointError(f"{path} was written by a run with a different config. Use a new "
                                  "--output-dir, or delete that folder to start over.")

    def _load_training_state(self, name: str, state: dict) -> None:
        self._models[name].load_state_dict(state["state_dict"])
        if self._optims[name] is not None and state.get("optimizer") is not None:
            self._optims[name].load_state_dict(state["optimizer"])
        if self._scheds[name] is not None and state.get("scheduler") is not None:
            self._scheds[name].load_state_dict(state["scheduler"])

    def _snapshot_state(self, next_epoch: int) -> dict:
        """Everything needed to continue bit-exactly at ``next_epoch`` (copied: training mutates in place)."""
        models = {name: copy.deepcopy(self._training_state(name)) for name in self.get_model_names()}
        return {"epoch": next_epoch, "models": models, "rng": rng_state(), "best_result": self.best_result,
                "extra": copy.deepcopy(self.extra_resume_state()),
                "config_fingerprint": self.resume_fingerprint()}

    def _write_resume_state(self, snapshot: dict) -> str:
        path = os.path.join(self.output_dir, RESUME_FILE)
        atomic_write(path, lambda f: torch.save(snapshot, f))
        self._last_resume_save = time.time()
        return path

    def resume_model_if_exist(self, directory: str) -> int:
        """The epoch to start at: from ``resume.pth.tar`` (exact continuation) or, failing that, from the
        newest Dassl-layout epoch checkpoint of every model (weights, optimizer and schedule only)."""
        resume_path = os.path.join(directory, RESUME_FILE)
        if os.path.isfile(resume_path):
            state = load_checkpoint(resume_path)
            self._check_fingerprint(state, resume_path)
            for name in self.get_model_names():
                self._load_training_state(name, state["models"][name])
            set_rng_state(state["rng"])
            self.best_result = state.get("best_result", self.best_result)
            self.load_extra_resume_state(state.get("extra") or {})
            logger.info("Resuming from %s at epoch %d", resume_path, state["epoch"] + 1, extra={"console": True})
            return int(state["epoch"])
        names = self.get_model_names()
        if not names or not all(os.path.isfile(os.path.join(directory, n, "checkpoint")) for n in names):
            return 0
        for name in names:
            with open(os.path.join(directory, name, "checkpoint")) as f:
                path = os.path.join(directory, name, f.readline().strip())
            ckpt = load_checkpoint(path)
            self._check_fingerprint(ckpt, path)
            self._load_training_state(name, ckpt)
            start_epoch = int(ckpt["epoch"])
            logger.info("Resuming from %s (epoch %d done)", path, start_epoch, extra={"console": True})
        return start_epoch

    # ---- loop -----------------------------------------------------------------------------
    def train(self, start_epoch: Optional[int] = None, max_epoch: Optional[int] = None) -> None:
        """``start_epoch`` is only Dassl's signature: ``before_train`` decides where to start (resume), as in Dassl."""
        if max_epoch is not None:
            self.max_epoch = max_epoch
        self.before_train()
        self._snapshot = self._snapshot_state(self.start_epoch)
        iterations = self.progress_iterations()
        if iterations is None:
            total, unit, done = self.max_epoch, "epoch", self.start_epoch
        else:
            total, unit, done = iterations, "it", min(iterations, self.start_epoch * len(self.train_loader_x))
        self._bar = progress_bar(total, self.cfg.TRAINER.NAME, unit=unit, leave=True, initial=done)
        try:
            for epoch in range(self.start_epoch, self.max_epoch):
                self.epoch = epoch
                self.before_epoch()
                self.run_epoch()
                self.after_epoch()
                self._snapshot = self._snapshot_state(epoch + 1)
                self._maybe_save_resume_state(epoch)
                if iterations is None:
                    self._bar.update(1)
        except RunInterrupted as err:
            path = self._write_resume_state(self._snapshot)
            raise RunInterrupted(f"{err}: saved the state after epoch {self._snapshot['epoch']}/{self.max_epoch} "
                                 f"to {path}; run the same command to continue") from None
        finally:
            self._bar.close()
            self._bar = None
        self.after_train()

    def _maybe_save_resume_state(self, epoch: int) -> None:
        if epoch + 1 >= self.max_epoch:  # the final epoch checkpoint now holds the finished state
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.output_dir, RESUME_FILE))
            return
        every = float(self.cfg.TRAIN.get("RESUME_SAVE_S", 60.0))
        if every >= 0 and time.time() - getattr(self, "_last_resume_save", self.time_start) >= every:
            self._write_resume_state(self._snapshot)

    def before_train(self) -> None:
        self.start_epoch = self.resume_model_if_exist(self.cfg.RESUME or self.cfg.OUTPUT_DIR)
        writer_dir = os.path.join(self.output_dir, "tensorboard")
        os.makedirs(writer_dir, exist_ok=True)
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
        self.close_writer()  # the run's wall time, by phase, is train.py's closing line

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        if not self.cfg.TEST.NO_TEST and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            if curr_result > self.best_result:
                self.best_result = curr_result
                self.save_model(self.epoch, self.output_dir, val_result=curr_result,
                                model_name=BEST_MODEL)
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        if self.epoch + 1 == self.max_epoch or (freq > 0 and (self.epoch + 1) % freq == 0):
            self.save_model(self.epoch, self.output_dir)

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = defaultdict(AverageMeter)
        batch_time, data_time = AverageMeter(), AverageMeter()
        self.num_batches = len(self.train_loader_x)
        if self.num_batches == 0:
            raise RuntimeError("The training loader is empty: no training images")
        end = time.time()
        for batch_idx, batch in enumerate(self.train_loader_x):
            self.batch_idx = batch_idx
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            batch_time.update(time.time() - end)
            for k, v in loss_summary.items():
                losses[k].update(v.item() if isinstance(v, torch.Tensor) else v)
            print_freq = self.cfg.TRAIN.PRINT_FREQ
            if (self.batch_idx + 1) % print_freq == 0 or self.num_batches < print_freq:
                remaining = (self.num_batches - self.batch_idx - 1
                             + (self.max_epoch - self.epoch - 1) * self.num_batches)
                eta = str(datetime.timedelta(seconds=int(batch_time.avg * remaining)))
                running = " ".join(f"{k} {m.val:.4f} ({m.avg:.4f})" for k, m in losses.items())
                logger.info("epoch [%d/%d] batch [%d/%d] time %.3f (%.3f) data %.3f (%.3f) %s lr %.4e eta %s",
                            self.epoch + 1, self.max_epoch, self.batch_idx + 1, self.num_batches,
                            batch_time.val, batch_time.avg, data_time.val, data_time.avg, running,
                            self.get_current_lr(), eta)
            if self._bar is not None:
                self._bar.set_postfix_str(" ".join(f"{k} {m.avg:.4g}" for k, m in losses.items()),
                                          refresh=False)
                if self.progress_iterations() is not None:
                    self._bar.update(1)
            n_iter = self.epoch * self.num_batches + self.batch_idx
            for name, meter in losses.items():
                self.write_scalar("train/" + name, meter.avg, n_iter)
            self.write_scalar("train/lr", self.get_current_lr(), n_iter)
            end = time.time()

    # ---- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        """Evaluate on ``split`` (default TEST.SPLIT); logs ``* accuracy: X%`` and keeps all metrics."""
        self.set_model_mode("eval")
        self.evaluator.reset()
        split = split or self.cfg.TEST.SPLIT
        if split not in ("val", "test"):
            raise ValueError(f"Unknown evaluation split {split!r}; use 'val' or 'test'")
        if split == "val" and self.val_loader is None:
            raise RuntimeError(f"{self.cfg.DATASET.NAME} has no validation split to evaluate on")
        loader = self.val_loader if split == "val" else self.test_loader
        logger.info("Evaluate on the *%s* set", split)
        for batch in loader:
            x, label = self.parse_batch_test(batch)
            self.evaluator.process(self.model_inference(x), label)
        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        self.last_results = dict(results, split=split)
        return float(results["accuracy"])

