"""The built-in engine: our own implementation of the parts of Dassl that trainers and datasets use."""
from .checkpoint import CheckpointError, load_checkpoint, load_pretrained_weights, save_checkpoint
from .config import get_cfg_default
from .data import DataManager, DatasetWrapper, build_data_loader, build_dataset
from .dataset import DatasetBase, Datum
from .evaluator import build_evaluator, compute_accuracy
from .optim import build_lr_scheduler, build_optimizer
from .registry import DATASET_REGISTRY, TRAINER_REGISTRY, Registry
from .trainer import SimpleTrainer, TrainerX, build_trainer
from .transforms import build_transform
from .utils import (
    CorruptImageError,
    atomic_write,
    check_isfile,
    collect_env_info,
    listdir_nohidden,
    mkdir_if_missing,
    read_image,
    read_json,
    set_random_seed,
    setup_logger,
    write_json,
)

__all__ = [
    "CheckpointError", "CorruptImageError", "DATASET_REGISTRY", "TRAINER_REGISTRY", "Registry", "DataManager",
    "DatasetBase", "DatasetWrapper", "Datum", "SimpleTrainer", "TrainerX", "atomic_write", "build_data_loader",
    "build_dataset", "build_evaluator", "build_lr_scheduler", "build_optimizer", "build_trainer",
    "build_transform", "check_isfile", "collect_env_info", "compute_accuracy", "get_cfg_default",
    "listdir_nohidden", "load_checkpoint", "load_pretrained_weights", "mkdir_if_missing", "read_image",
    "read_json", "save_checkpoint", "set_random_seed", "setup_logger", "write_json",
]
