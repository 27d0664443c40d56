"""Download the benchmark's split files (and small annotation files) from Google Drive with gdown.

Usage, the files and their Drive ids: DATASETS.md ("Split files and the download helper"). Each file is
written to a temporary name and renamed, so an interrupted download never leaves a truncated split file.
"""
import argparse
import logging
import os
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

# DATASET.NAME -> [(path under the datasets root, Google Drive file id), ...]
SPLIT_FILES: Dict[str, List[Tuple[str, str]]] = {
    "ImageNet": [("imagenet/classnames.txt", "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF")],
    "Caltech101": [("caltech-101/split_zhou_Caltech101.json", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN")],
    "OxfordPets": [("oxford_pets/split_zhou_OxfordPets.json", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs")],
    "StanfordCars": [("stanford_cars/split_zhou_StanfordCars.json", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT")],
    "OxfordFlowers": [("oxford_flowers/split_zhou_OxfordFlowers.json", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
                      ("oxford_flowers/cat_to_name.json", "1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0")],
    "Food101": [("food-101/split_zhou_Food101.json", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl")],
    "SUN397": [("sun397/split_zhou_SUN397.json", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq")],
    "DescribableTextures": [("dtd/split_zhou_DescribableTextures.json", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x")],
    "EuroSAT": [("eurosat/split_zhou_EuroSAT.json", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o")],
    "UCF101": [("ucf101/split_zhou_UCF101.json", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y")],
}
UCF101_FRAMES = ("ucf101/UCF-101-midframes.zip", "10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O")

# Datasets without downloadable split files, and why (said when a user asks for them).
NO_SPLIT_FILE = {
    "FGVCAircraft": "its split is the text lists shipped with the images",
    **dict.fromkeys(("ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR"),
                    "it is test-only; it uses imagenet/classnames.txt"),
}


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says which and how to get it by hand."""


def fetch(file_id: str, dest: str, force: bool = False) -> bool:
    """Download one Google Drive file to ``dest`` (via ``dest.part`` + rename); False if it was already there."""
    if os.path.isfile(dest) and not force:
        logger.info("Keeping existing %s", dest)
        return False
    try:
        import gdown
    except ImportError as err:
        raise DownloadError("gdown is not installed: pip install gdown") from err
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    hint = f"Download https://drive.google.com/uc?id={file_id} by hand (in a browser) and save it as {dest}."
    try:
        result = gdown.download(id=file_id, output=part, quiet=False)
    except Exception as err:  # gdown raises requests/its own errors; all mean "not fetched"
        Path(part).unlink(missing_ok=True)
        raise DownloadError(f"Could not download {dest} from Google Drive ({type(err).__name__}: {err}). "
                            f"Are you online? {hint}") from err
    if not result or not os.path.isfile(part):
        Path(part).unlink(missing_ok=True)
        raise DownloadError(f"Google Drive did not return {dest} (offline, or the file's quota is exhausted). {hint}")
    os.replace(part, dest)
    logger.info("Saved %s", dest)
    return True


def download_splits(root: str, names: Optional[Sequence[str]] = None, force: bool = False) -> List[str]:
    """Fetch the split files of ``names`` (default: all) under ``root``; return the paths written."""
    names = list(names) if names else list(SPLIT_FILES)
    unknown = [n for n in names if n not in SPLIT_FILES and n not in NO_SPLIT_FILE]
    if unknown:
        raise DownloadError(f"Unknown dataset(s) {unknown}; choose from {', '.join(list(SPLIT_FILES) + list(NO_SPLIT_FILE))}")
    written = []
    for name in names:
        if name in NO_SPLIT_FILE:
            logger.info("%s: nothing to download (%s)", name, NO_SPLIT_FILE[name])
            continue
        for rel, file_id in SPLIT_FILES[name]:
            dest = os.path.join(root, rel)
            if fetch(file_id, dest, force=force):
                written.append(dest)
    return written


def download_ucf101_frames(root: str, force: bool = False) -> str:
    """Fetch the UCF101 middle-frames zip and extract it to ``ucf101/UCF-101-midframes``."""
    rel, file_id = UCF101_FRAMES
    archive = os.path.join(root, rel)
    fetch(file_id, archive, force=force)
    target = os.path.join(root, "ucf101")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(target)
    logger.info("Extracted %s into %s", archive, target)
    return os.path.join(target, "UCF-101-midframes")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets.download", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    splits = sub.add_parser("splits", help="download split_zhou_*.json, imagenet/classnames.txt, cat_to_name.json")
    splits.add_argument("--root", required=True, help="datasets root (DATASET.ROOT / --root of train.py)")
    splits.add_argument("--dataset", nargs="+", metavar="NAME", help="DATASET.NAMEs (default: all)")
    splits.add_argument("--force", action="store_true", help="download again even if the file exists")
    frames = sub.add_parser("ucf101-frames", help="download and extract UCF101's middle frames")
    frames.add_argument("--root", required=True)
    frames.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = os.path.abspath(os.path.expanduser(args.root))
    try:
        if args.command == "splits":
            written = download_splits(root, args.dataset, force=args.force)
            logger.info("%d file(s) downloaded under %s", len(written), root)
        else:
            download_ucf101_frames(root, force=args.force)
    except DownloadError as err:
        logger.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
