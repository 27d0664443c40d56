"""Small helpers with Dassl's names: seeding, json, files, environment info."""
import contextlib
import json
import logging
import os
import random
import sys
from typing import Any, List

import numpy as np
import torch

from engine.libraries import import_open_clip

logger = logging.getLogger(__name__)


def set_random_seed(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (all devices), as Dassl does before sampling few-shot sets."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def mkdir_if_missing(dirname: str) -> None:
    with contextlib.suppress(FileExistsError):  # Dassl's: a file at ``dirname`` is not an error
        os.makedirs(dirname, exist_ok=True)


def check_isfile(fpath: str) -> bool:
    isfile = os.path.isfile(fpath)
    if not isfile:
        logger.warning('No file found at "%s"', fpath)
    return isfile


def read_json(fpath: str) -> Any:
    with open(fpath, "r") as f:
        return json.load(f)


def listdir_nohidden(path: str, sort: bool = False) -> List[str]:
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    return sorted(items) if sort else items


def collect_env_info() -> str:
    import platform

    import torchvision

    lines = [
        f"Python: {sys.version.split()[0]} ({platform.platform()})",
        f"PyTorch: {torch.__version__}, torchvision: {torchvision.__version__}",
        f"CUDA available: {torch.cuda.is_available()}",
    ]
    if torch.cuda.is_available():
        lines.append(f"GPU: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
    with contextlib.suppress(ImportError):
        lines.append(f"open_clip: {import_open_clip().__version__}")
    return "\n".join(lines)
