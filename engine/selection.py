"""Choose between the real ``dassl`` package and the built-in core (see ``engine/__init__.py``)."""
import importlib.util
import warnings
from typing import Dict, Tuple

from engine.errors import EngineUnavailableError

# What the engine supplies, by the module of the real Dassl (c61a1b5) that defines each name. Under Dassl
# each is Dassl's own object, so our trainers and datasets register into, and run inside, the user's Dassl.
DASSL_MODULES = {
    "dassl.config": ("get_cfg_default",),
    "dassl.data": ("DataManager", "DatasetWrapper"),
    "dassl.data.data_manager": ("build_data_loader",),
    "dassl.data.datasets": ("DATASET_REGISTRY", "DatasetBase", "Datum", "build_dataset"),
    "dassl.data.transforms": ("build_transform",),
    "dassl.engine": ("TRAINER_REGISTRY", "SimpleTrainer", "TrainerX", "build_trainer"),
    "dassl.metrics": ("compute_accuracy",),
    "dassl.optim": ("build_optimizer",),
    "dassl.utils": ("check_isfile", "collect_env_info", "listdir_nohidden", "load_pretrained_weights",
                    "mkdir_if_missing", "read_json", "set_random_seed"),
}
API_NAMES = tuple(name for names in DASSL_MODULES.values() for name in names)

# Module of each engine's ``Datum`` class, as pickled Datum lists name it: CoOp/Dassl's few-shot pickles
# hold Dassl's; earlier versions of this project wrote the built-in's under CoOp's names (CoOp cannot read those).
DATUM_MODULES = {"dassl": "dassl.data.datasets.base_dataset", "builtin": "engine.builtin.dataset"}


def datum_pickle_engine(head: bytes):
    """The engine whose ``Datum`` a pickle's first bytes name ("dassl", "builtin"), or None."""
    # Dassl first: a pickle naming both is Dassl's
    return next((name for name in ("dassl", "builtin") if DATUM_MODULES[name].encode() in head), None)


def _builtin_api() -> Dict[str, object]:
    from engine import builtin

    return {name: getattr(builtin, name) for name in API_NAMES}


def select_engine(requested: str) -> Tuple[str, Dict[str, object]]:
    requested = (requested or "").strip().lower()
    if requested not in ("", "dassl", "builtin"):
        raise EngineUnavailableError(
            f"TASKRES_ENGINE={requested!r} is not valid; use 'dassl', 'builtin' or leave it unset.")
    if requested == "builtin":
        return "builtin", _builtin_api()
    if importlib.util.find_spec("dassl") is None:
        if requested == "dassl":
            raise EngineUnavailableError(
                "TASKRES_ENGINE=dassl but the `dassl` package is not installed. Install Dassl "
                "(https://github.com/KaiyangZhou/Dassl.pytorch, `pip install -e .` in its checkout) or "
                "unset TASKRES_ENGINE to use the built-in engine.")
        return "builtin", _builtin_api()
    try:
        api = {name: getattr(importlib.import_module(module), name)
               for module, names in DASSL_MODULES.items() for name in names}
    except Exception as err:  # Dassl imports wilds/pandas etc.; any import failure means "unusable"
        if requested == "dassl":
            raise EngineUnavailableError(
                f"TASKRES_ENGINE=dassl but importing Dassl failed ({type(err).__name__}: {err}). "
                "Install its requirements or unset TASKRES_ENGINE to use the built-in engine.") from err
        warnings.warn(f"Dassl is installed but failed to import ({err}); using the built-in engine.", stacklevel=2)
        return "builtin", _builtin_api()
    return "dassl", api
