"""The one API trainers and datasets import: Dassl's when it is installed and works, else our built-in core.

``TASKRES_ENGINE=dassl`` forces Dassl (and stops with a clear message when it is missing or broken),
``TASKRES_ENGINE=builtin`` forces the built-in core; unset, Dassl is used when importable and
compatible with the installed torch, else the built-in core with a warning. ``ENGINE_NAME`` says which.
"""
import logging
import os

from engine.builtin.utils import read_image as _builtin_read_image
from engine.errors import CheckpointError, CorruptImageError, EngineUnavailableError
from engine.fileio import atomic_write, atomic_write_bytes
from engine.selection import select_engine

logger = logging.getLogger(__name__)

ENGINE_NAME, _api = select_engine(os.environ.get("TASKRES_ENGINE", ""))

TRAINER_REGISTRY = _api["TRAINER_REGISTRY"]
DATASET_REGISTRY = _api["DATASET_REGISTRY"]
TrainerX = _api["TrainerX"]
SimpleTrainer = _api["SimpleTrainer"]
build_trainer = _api["build_trainer"]
build_dataset = _api["build_dataset"]
Datum = _api["Datum"]
DatasetBase = _api["DatasetBase"]
DataManager = _api["DataManager"]
DatasetWrapper = _api["DatasetWrapper"]
build_transform = _api["build_transform"]
build_data_loader = _api["build_data_loader"]
build_optimizer = _api["build_optimizer"]
build_lr_scheduler = _api["build_lr_scheduler"]
get_cfg_default = _api["get_cfg_default"]
setup_logger = _api["setup_logger"]
set_random_seed = _api["set_random_seed"]
collect_env_info = _api["collect_env_info"]
load_checkpoint = _api["load_checkpoint"]
save_checkpoint = _api["save_checkpoint"]
load_pretrained_weights = _api["load_pretrained_weights"]
compute_accuracy = _api["compute_accuracy"]
build_evaluator = _api["build_evaluator"]
read_json = _api["read_json"]
write_json = _api["write_json"]
mkdir_if_missing = _api["mkdir_if_missing"]
# Always ours: Dassl's read_image retries forever on an undecodable file; ours names it and stops.
read_image = _builtin_read_image
check_isfile = _api["check_isfile"]
listdir_nohidden = _api["listdir_nohidden"]

__all__ = [
    "ENGINE_NAME", "atomic_write", "atomic_write_bytes", "EngineUnavailableError", "CheckpointError", "CorruptImageError", "TRAINER_REGISTRY", "DATASET_REGISTRY", "TrainerX",
    "SimpleTrainer", "build_trainer", "build_dataset", "Datum", "DatasetBase", "DataManager",
    "DatasetWrapper", "build_transform", "build_data_loader", "build_optimizer", "build_lr_scheduler",
    "get_cfg_default", "setup_logger", "set_random_seed", "collect_env_info", "load_checkpoint",
    "save_checkpoint", "load_pretrained_weights", "compute_accuracy", "build_evaluator", "read_json",
    "write_json", "mkdir_if_missing", "read_image", "check_isfile", "listdir_nohidden",
]
