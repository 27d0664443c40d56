"""Choose between the real ``dassl`` package and the built-in core (see ``engine/__init__.py``)."""
import importlib.util
import inspect
import logging
import warnings
from typing import Dict, Tuple

from engine.errors import EngineUnavailableError

logger = logging.getLogger(__name__)

API_NAMES = (
    "TRAINER_REGISTRY", "DATASET_REGISTRY", "TrainerX", "SimpleTrainer", "build_trainer", "build_dataset",
    "Datum", "DatasetBase", "DataManager", "DatasetWrapper", "build_transform", "build_data_loader",
    "build_optimizer", "build_lr_scheduler", "get_cfg_default", "setup_logger", "set_random_seed",
    "collect_env_info", "load_checkpoint", "save_checkpoint", "load_pretrained_weights",
    "compute_accuracy", "build_evaluator", "read_json", "write_json", "mkdir_if_missing", "read_image",
    "check_isfile", "listdir_nohidden",
)

DASSL_FIX = (
    "Either run with the built-in engine (export TASKRES_ENGINE=builtin) or install a Dassl checkout "
    "patched for torch>=2.2 (remove the `verbose` argument in dassl/optim/lr_scheduler.py)."
)


def _builtin_api() -> Dict[str, object]:
    from engine import builtin

    return {name: getattr(builtin, name) for name in API_NAMES}


def dassl_incompatibility() -> str:
    """Return why the installed Dassl cannot run on this torch, or '' when it can.

    The last Dassl release's warm-up scheduler passes ``verbose`` to ``LRScheduler.__init__``, which
    torch 2.2+ no longer accepts; the failure would surface as a TypeError at the first epoch.
    """
    import torch

    params = inspect.signature(torch.optim.lr_scheduler.LRScheduler.__init__).parameters
    if "verbose" in params:
        return ""
    try:
        from dassl.optim import lr_scheduler as dassl_sched
        source = inspect.getsource(dassl_sched._BaseWarmupScheduler.__init__)
    except (ImportError, AttributeError, OSError, TypeError):
        return ""
    if "verbose" in source:
        return (f"the installed Dassl passes `verbose` to torch's LRScheduler, which torch "
                f"{torch.__version__} rejects")
    return ""


def _dassl_api() -> Dict[str, object]:

    return dict(locals())


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
    problem = dassl_incompatibility()
    if problem:
        if requested == "dassl":
            raise EngineUnavailableError(f"TASKRES_ENGINE=dassl but {problem}. {DASSL_FIX}")
        warnings.warn(f"Dassl found but {problem}; using the built-in engine instead. {DASSL_FIX}", stacklevel=2)
        return "builtin", _builtin_api()
    return "dassl", api
