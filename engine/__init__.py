"""The one API trainers and datasets import: the engine's names (``engine.selection.API_NAMES``), from the
real ``dassl`` package when it imports, else from ``engine/builtin``; and the project's own loop and I/O
(``PROJECT_NAMES``), identical under both. ``TASKRES_ENGINE`` picks the engine, ``ENGINE_NAME`` says which
runs. Why and how: docs/engine.md.
"""
import logging
import os
from collections import Counter

from engine.builtin.data import DatasetWrapper as ImageDatasetWrapper
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.errors import CheckpointError, CorruptImageError, EngineUnavailableError, RunInterrupted
from engine.evaluation import build_evaluator
from engine.fileio import atomic_write, atomic_write_bytes, write_json
from engine.images import read_image
from engine.logs import setup_logger
from engine.loop import TrainingLoop
from engine.schedule import build_lr_scheduler
from engine.selection import API_NAMES, DATUM_MODULES, datum_pickle_engine, select_engine

ENGINE_NAME, _api = select_engine(os.environ.get("TASKRES_ENGINE", ""))

# The engine's names, bound explicitly (not through globals()) so linters and readers see them.
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
get_cfg_default = _api["get_cfg_default"]
set_random_seed = _api["set_random_seed"]
collect_env_info = _api["collect_env_info"]
load_pretrained_weights = _api["load_pretrained_weights"]
compute_accuracy = _api["compute_accuracy"]
read_json = _api["read_json"]
mkdir_if_missing = _api["mkdir_if_missing"]
check_isfile = _api["check_isfile"]
listdir_nohidden = _api["listdir_nohidden"]

# Modules a pickled ``Datum`` may come from (either engine's, and the one in use): for the dataset layer's
# unpickler, which must not name engine modules itself.
PICKLED_DATUM_MODULES = frozenset({*DATUM_MODULES.values(), Datum.__module__})


def generate_fewshot(dataset, items, num_shots: int, split: str = "train"):
    """``dataset.generate_fewshot_dataset(items, num_shots=K)``, warning once when a class has fewer than K
    items under either engine (the built-in draw logs that itself; Dassl's stays silent)."""
    if ENGINE_NAME != "builtin":
        short = sum(1 for n in Counter(d.label for d in items).values() if n < num_shots)
        if short:
            logging.getLogger(__name__).warning(
                "%d class(es) have fewer than %d %s images; all their images are used", short, num_shots, split)
    return dataset.generate_fewshot_dataset(items, num_shots=num_shots)


PROJECT_NAMES = (
    "TrainingLoop", "build_lr_scheduler", "build_evaluator", "load_checkpoint", "save_checkpoint",
    "setup_logger", "read_image", "ImageDatasetWrapper", "write_json",
)

# A literal list, so linters see every re-export as used (an auto-fix once deleted the Dassl imports).
__all__ = [
    "ENGINE_NAME", "PROJECT_NAMES", "PICKLED_DATUM_MODULES", "datum_pickle_engine", "generate_fewshot",
    # engine names (API_NAMES)
    "TRAINER_REGISTRY", "DATASET_REGISTRY", "TrainerX", "SimpleTrainer", "build_trainer", "build_dataset",
    "Datum", "DatasetBase", "DataManager", "DatasetWrapper", "build_transform", "build_data_loader",
    "build_optimizer", "get_cfg_default", "set_random_seed", "collect_env_info", "load_pretrained_weights",
    "compute_accuracy", "read_json", "mkdir_if_missing", "check_isfile", "listdir_nohidden",
    # the project's own (PROJECT_NAMES)
    "TrainingLoop", "build_lr_scheduler", "build_evaluator", "load_checkpoint", "save_checkpoint",
    "setup_logger", "read_image", "ImageDatasetWrapper", "write_json",
    # errors and file helpers
    "atomic_write", "atomic_write_bytes", "CheckpointError", "CorruptImageError", "EngineUnavailableError",
    "RunInterrupted",
]
assert set(API_NAMES) | set(PROJECT_NAMES) <= set(__all__), "engine.__all__ is missing a name"
