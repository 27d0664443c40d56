"""The built-in engine: our own implementation of the Dassl names that trainers and datasets use
(``engine.selection.API_NAMES``), for when Dassl is not installed."""
from engine.checkpoint import load_pretrained_weights
from engine.evaluation import compute_accuracy

from .config import get_cfg_default
from .data import DataManager, DatasetWrapper, build_data_loader, build_dataset
from .dataset import DatasetBase, Datum
from .optim import build_optimizer
from .registry import DATASET_REGISTRY, TRAINER_REGISTRY
from .trainer import SimpleTrainer, TrainerX, build_trainer
from .transforms import build_transform
from .utils import (
    check_isfile,
    collect_env_info,
    listdir_nohidden,
    mkdir_if_missing,
    read_json,
    set_random_seed,
)

__all__ = [
    "DATASET_REGISTRY", "TRAINER_REGISTRY", "DataManager", "DatasetBase", "DatasetWrapper", "Datum",
    "SimpleTrainer", "TrainerX", "build_data_loader", "build_dataset", "build_optimizer", "build_trainer",
    "build_transform", "check_isfile", "collect_env_info", "compute_accuracy", "get_cfg_default",
    "listdir_nohidden", "load_pretrained_weights", "mkdir_if_missing", "read_json", "set_random_seed",
]
