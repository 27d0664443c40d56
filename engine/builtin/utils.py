"""Small helpers with Dassl's names: seeding, logging, json, files, images, environment info."""
import errno
import json
import logging
import os
import random
import sys
from typing import Any, List

import numpy as np
import torch
from PIL import Image

from engine.errors import CorruptImageError
from engine.fileio import atomic_write

logger = logging.getLogger(__name__)


def set_random_seed(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (all devices), as Dassl does before sampling few-shot sets."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def setup_logger(output=None) -> None:
    """Log to the console and, when ``output`` is given, to ``output/log.txt`` (or to ``output`` if it is a file).

    Calling it again replaces the file handler, so several runs in one process each get their own log.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    for handler in list(root.handlers):
        if getattr(handler, "_taskres", False):
            root.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    console._taskres = True
    root.addHandler(console)
    if output:
        fpath = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        mkdir_if_missing(os.path.dirname(fpath) or ".")
        file_handler = logging.FileHandler(fpath, mode="a")
        file_handler.setFormatter(fmt)
        file_handler._taskres = True
        root.addHandler(file_handler)


def mkdir_if_missing(dirname: str) -> None:
    try:
        os.makedirs(dirname, exist_ok=True)
    except OSError as err:
        if err.errno != errno.EEXIST:
            raise


def check_isfile(fpath: str) -> bool:
    isfile = os.path.isfile(fpath)
    if not isfile:
        logger.warning('No file found at "%s"', fpath)
    return isfile


def read_json(fpath: str) -> Any:
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj: Any, fpath: str) -> None:
    """Write JSON atomically (temporary file + rename)."""
    data = json.dumps(obj, indent=4, separators=(",", ": ")).encode()
    atomic_write(fpath, lambda f: f.write(data))


def read_image(path: str) -> Image.Image:
    """Open an image as RGB; a missing or undecodable file raises an error that names it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:
        raise CorruptImageError(
            f"Cannot read image {path} ({err}). Replace or remove the file (and its split entry).") from err


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
    try:
        import open_clip

        lines.append(f"open_clip: {open_clip.__version__}")
    except ImportError:
        pass
    return "\n".join(lines)
