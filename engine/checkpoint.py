"""Checkpoints in Dassl's layout: ``<dir>/<model>/model.pth.tar-<epoch>`` plus a ``checkpoint`` file
naming the latest one. Files are written atomically and load with ``weights_only=True``."""
import hashlib
import logging
import os
import pickle
import shutil
from collections import OrderedDict
from typing import Dict, Iterable, Mapping

import torch

from engine.errors import CheckpointError
from engine.fileio import atomic_write, atomic_write_bytes
from engine.libraries import torch_load

logger = logging.getLogger(__name__)

BEST_MODEL = "model-best.pth.tar"  # the val-selected model a run deploys (Dassl's name)
# The engine's keys that never change what is trained: where things live, how often to print or save, how the
# model is evaluated. A trainer adds its own (``TrainingLoop.resume_ignored_keys``).
RESUME_IGNORED_KEYS = ("OUTPUT_DIR", "RESUME", "VERBOSE", "USE_CUDA", "DATASET.ROOT", "DATALOADER.NUM_WORKERS",
                       "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ", "TRAIN.RESUME_SAVE_S", "TEST")


def flatten_config(cfg, ignore: Iterable[str] = (), prefix: str = "") -> Dict[str, str]:
    """``{"OPTIM.LR": "0.002", ...}``: every leaf of a (yacs) config as ``repr``, minus the keys or nodes in ``ignore``."""
    ignore = tuple(ignore)
    flat: Dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if any(name == k or name.startswith(k + ".") for k in ignore):
            continue
        if hasattr(value, "items"):
            flat.update(flatten_config(value, ignore, name + "."))
        else:
            flat[name] = repr(value)
    return flat


def fingerprint(flat: Mapping[str, str], length: int = 16) -> str:
    """A stable hex digest of a flattened config (order-free)."""
    return hashlib.sha256(repr(sorted(flat.items())).encode()).hexdigest()[:length]


def config_fingerprint(cfg, ignore: Iterable[str]) -> str:
    """Hash of the config minus ``ignore``: a checkpoint is resumed only under the same value."""
    return fingerprint(flatten_config(cfg, ignore))


def save_checkpoint(state: dict, save_dir: str, is_best: bool = False, model_name: str = "") -> str:
    """Write ``state`` (its ``state_dict`` without DataParallel's ``module.`` prefixes) into ``save_dir``."""
    state["state_dict"] = OrderedDict((k.removeprefix("module."), v) for k, v in state["state_dict"].items())
    model_name = model_name or f"model.pth.tar-{state['epoch']}"
    fpath = os.path.join(save_dir, model_name)
    atomic_write(fpath, lambda f: torch.save(state, f))
    if model_name.startswith("model.pth.tar-"):  # "checkpoint" names the newest epoch, where a resume starts
        atomic_write_bytes(os.path.join(save_dir, "checkpoint"), model_name.encode() + b"\n")
    logger.info("Checkpoint saved to %s", fpath)
    if is_best:
        shutil.copy(fpath, os.path.join(save_dir, BEST_MODEL))
    return fpath


def _reason(err: Exception) -> str:
    """A short cause for a message: the first line of the error, without torch's own advice."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first[:120]}" if first else type(err).__name__


def load_checkpoint(fpath: str) -> dict:
    """Load a checkpoint on the CPU with ``weights_only=True``; files by Dassl/CoOp/TaskRes pickle scheduler
    objects and fall back to a full, logged unpickle (load only files you trust). ``CheckpointError`` names a
    missing, truncated or corrupt file and what to do."""
    if not fpath or not os.path.isfile(fpath):
        raise CheckpointError(f"Checkpoint not found: {fpath}. Check --model-dir and --load-epoch.")
    corrupt = (f"Cannot read checkpoint {fpath}: the file is corrupt or truncated ({{}}). Delete it (a run "
               "folder's resume.pth.tar or newest epoch file) and rerun, or point to another epoch.")
    try:
        return torch_load(fpath, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" not in str(err) and "Unsupported global" not in str(err):
            raise CheckpointError(corrupt.format(_reason(err))) from None
        logger.warning("%s holds Python objects beyond tensors (a Dassl-written file); loading it with "
                       "weights_only=False", fpath)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        raise CheckpointError(corrupt.format(_reason(err))) from None
    try:
        return torch_load(fpath, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(corrupt.format(_reason(err))) from None


def load_pretrained_weights(model: torch.nn.Module, weight_path: str) -> None:
    """Load matching keys of a checkpoint into ``model`` (Dassl's MODEL.INIT_WEIGHTS)."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint)
    own = model.state_dict()
    matched = {k.removeprefix("module."): v for k, v in state_dict.items()}
    matched = {k: v for k, v in matched.items() if k in own and own[k].size() == v.size()}
    if not matched:
        raise CheckpointError(f"No layer of {weight_path} matches the model")
    own.update(matched)
    model.load_state_dict(own)
    logger.info("Loaded %d/%d tensors from %s", len(matched), len(state_dict), weight_path)
