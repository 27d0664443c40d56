"""Choose between the real ``dassl`` package and the built-in core (see ``engine/__init__.py``)."""
import importlib.util
import logging
import warnings
from typing import Dict, Tuple

from engine.errors import EngineUnavailableError

logger = logging.getLogger(__name__)

# What the engine supplies: registries, config defaults, data (datasets, transforms, samplers, loaders)
# and small utilities. Under Dassl each of these names is Dassl's own object, so our trainers and
# datasets register into, and run inside, the user's Dassl. Everything a result depends on beyond these
# (the training loop, checkpoints, resume, the LR schedule, evaluation, logging, image reading) is the
# project's own and the same under both engines: see ``engine/__init__.py``.
API_NAMES = (
    "TRAINER_REGISTRY", "DATASET_REGISTRY", "TrainerX", "SimpleTrainer", "build_trainer", "build_dataset",
    "Datum", "DatasetBase", "DataManager", "DatasetWrapper", "build_transform", "build_data_loader",
    "build_optimizer", "get_cfg_default", "set_random_seed", "collect_env_info", "load_pretrained_weights",
    "compute_accuracy", "read_json", "mkdir_if_missing", "check_isfile", "listdir_nohidden",
)

# Module of each engine's ``Datum`` class, as pickled Datum lists name it: CoOp/Dassl's few-shot pickles
# hold Dassl's; earlier versions of this project wrote the built-in's under CoOp's names (CoOp cannot read those).
DATUM_MODULES = {"dassl": "dassl.data.datasets.base_dataset", "builtin": "engine.builtin.dataset"}


def datum_pickle_engine(head: bytes):
    """The engine whose ``Datum`` a pickle's first bytes name ("dassl", "builtin"), or None."""
    for name in ("dassl", "builtin"):  # Dassl first: a pickle naming both is Dassl's
        if DATUM_MODULES[name].encode() in head:
            return name
    return None


def _builtin_api() -> Dict[str, object]:
    from engine import builtin

    return {name: getattr(builtin, name) for name in API_NAMES}


def _dassl_api() -> Dict[str, object]:
    """Dassl's objects for every name in ``API_NAMES`` (imports fail here if Dassl is unusable)."""
    from dassl.config import get_cfg_default
    from dassl.data import DataManager, DatasetWrapper
    from dassl.data.data_manager import build_data_loader
    from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum, build_dataset
    from dassl.data.transforms import build_transform
    from dassl.engine import TRAINER_REGISTRY, SimpleTrainer, TrainerX, build_trainer
    from dassl.metrics import compute_accuracy
    from dassl.optim import build_optimizer
    from dassl.utils import (
        check_isfile,
        collect_env_info,
        listdir_nohidden,
        load_pretrained_weights,
        mkdir_if_missing,
        read_json,
        set_random_seed,
    )

    api = {
        "TRAINER_REGISTRY": TRAINER_REGISTRY, "DATASET_REGISTRY": DATASET_REGISTRY, "TrainerX": TrainerX,
        "SimpleTrainer": SimpleTrainer, "build_trainer": build_trainer, "build_dataset": build_dataset,
        "Datum": Datum, "DatasetBase": DatasetBase, "DataManager": DataManager, "DatasetWrapper": DatasetWrapper,
        "build_transform": build_transform, "build_data_loader": build_data_loader,
        "build_optimizer": build_optimizer, "get_cfg_default": get_cfg_default,
        "set_random_seed": set_random_seed, "collect_env_info": collect_env_info,
        "load_pretrained_weights": load_pretrained_weights, "compute_accuracy": compute_accuracy,
        "read_json": read_json, "mkdir_if_missing": mkdir_if_missing, "check_isfile": check_isfile,
        "listdir_nohidden": listdir_nohidden,
    }
    missing = set(API_NAMES) - set(api)
    if missing:  # a guard against this function and API_NAMES drifting apart
        raise ImportError(f"engine selection maps no Dassl object for {sorted(missing)}")
    return api


def select_engine(requested: str) -> Tuple[str, Dict[str, object]]:
    requested = (requested or "").strip().lower()
    if requested not in ("", "dassl", "builtin"):
        raise EngineUnavailableError(
            f"TASKRES_ENGINE={requested!r} is not valid; use 'dassl', 'builtin' or leave it unset.")
    if requested == "builtin":
        return "builtin", _builtin_api()
    has_dassl = importlib.util.find_spec("dassl") is not None
    if not has_dassl:
        if requested == "dassl":
            raise EngineUnavailableError(
                "TASKRES_ENGINE=dassl but the `dassl` package is not installed. Install Dassl "
                "(https://github.com/KaiyangZhou/Dassl.pytorch, `pip install -e .` in its checkout) or "
                "unset TASKRES_ENGINE to use the built-in engine.")
        return "builtin", _builtin_api()
    try:
        api = _dassl_api()
    except Exception as err:  # Dassl imports wilds/pandas etc.; any import failure means "unusable"
        if requested == "dassl":
            raise EngineUnavailableError(
                f"TASKRES_ENGINE=dassl but importing Dassl failed ({type(err).__name__}: {err}). "
                "Install its requirements or unset TASKRES_ENGINE to use the built-in engine.") from err
        warnings.warn(f"Dassl is installed but failed to import ({err}); using the built-in engine.", stacklevel=2)
        return "builtin", _builtin_api()
    return "dassl", api
