"""Checkpoints in Dassl's layout: ``<dir>/<model>/model.pth.tar-<epoch>`` plus a ``checkpoint`` file
naming the latest one. Files are written atomically and load with ``weights_only=True``."""
import io
import logging
import os
import pickle
import shutil
from collections import OrderedDict

import torch

from engine.errors import CheckpointError

from .utils import atomic_write, mkdir_if_missing

logger = logging.getLogger(__name__)


def save_checkpoint(state: dict, save_dir: str, is_best: bool = False, remove_module_from_keys: bool = True,
                    model_name: str = "") -> str:
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state["state_dict"] = OrderedDict(
            (k[7:] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items())
    model_name = model_name or f"model.pth.tar-{state['epoch']}"
    fpath = os.path.join(save_dir, model_name)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(fpath, lambda f: f.write(buffer.getbuffer()))
    if model_name.startswith("model.pth.tar-"):  # "checkpoint" names the newest epoch, where a resume starts
        atomic_write(os.path.join(save_dir, "checkpoint"), lambda f: f.write(model_name.encode() + b"\n"))
    logger.info("Checkpoint saved to %s", fpath)
    if is_best:
        shutil.copy(fpath, os.path.join(save_dir, "model-best.pth.tar"))
    return fpath


def load_checkpoint(fpath: str) -> dict:
    """Load a checkpoint on the CPU.

    Our files load with ``weights_only=True``. Files written by Dassl/CoOp/TaskRes pickle scheduler
    objects and need a full unpickle; that fallback is logged (load only files you trust).
    """
    if not fpath or not os.path.isfile(fpath):
        raise CheckpointError(f"Checkpoint not found: {fpath}. Check --model-dir and --load-epoch.")
    try:
        return torch.load(fpath, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        logger.warning("%s holds Python objects beyond tensors (a Dassl-written file); loading it with "
                       "weights_only=False", fpath)
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"Cannot read checkpoint {fpath} ({err}); the file is corrupt or truncated. "
                              "Delete it and retrain, or point to another epoch.") from err
    try:
        return torch.load(fpath, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"Cannot read checkpoint {fpath} ({err}); the file is corrupt or truncated.") from err


def load_pretrained_weights(model: torch.nn.Module, weight_path: str) -> None:
    """Load matching keys of a checkpoint into ``model`` (Dassl's MODEL.INIT_WEIGHTS)."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint)
    own = model.state_dict()
    matched = {k[7:] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    matched = {k: v for k, v in matched.items() if k in own and own[k].size() == v.size()}
    if not matched:
        raise CheckpointError(f"No layer of {weight_path} matches the model")
    own.update(matched)
    model.load_state_dict(own)
    logger.info("Loaded %d/%d tensors from %s", len(matched), len(state_dict), weight_path)
