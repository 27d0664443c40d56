"""Image reading, the project's own under both engines: a corrupt file stops the run with its name.

Dassl's ``read_image`` retries forever on a file it cannot decode; a run would hang silently.
"""
import os

from PIL import Image

from engine.errors import CorruptImageError


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
