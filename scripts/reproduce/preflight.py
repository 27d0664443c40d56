"""Pre-flight checks: is everything a grid (or a launcher) needs there, before hours of work start?

The datasets' folders and split files, the backbone's weights and the feature cache's disk need; each problem is
one line naming what is missing and the fix. What is checked, what is not, the command line: docs/grid.md.
"""
import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import yaml

from datasets.base import DOCS, BenchmarkDataset
from engine import DATASET_REGISTRY
from engine.libraries import import_open_clip
from scripts.reproduce.cost import EMBED_DIMS, encoder_cost
from scripts.reproduce.planning import PLANNING_ERRORS, REPO_ROOT, Cell, GridRequest, plan_runs
from trainers.backbone import OPENAI_MODELS, openai_weights_path

GB = 2 ** 30


@dataclass
class Preflight:
    problems: List[str] = field(default_factory=list)  # blocking: one line each, with the fix
    notes: List[str] = field(default_factory=list)     # worth knowing, not blocking

    def __iadd__(self, other: "Preflight") -> "Preflight":
        self.problems += other.problems
        self.notes += other.notes
        return self

    def lines(self) -> List[str]:
        out = [f"[check] {n}" for n in self.notes]
        if self.problems:
            return out + [f"{len(self.problems)} problem(s) before this can run:"] + [f"  - {p}" for p in self.problems]
        return out + ["ready"]


def _readable(path: str) -> bool:
    mode = os.R_OK | (os.X_OK if os.path.isdir(path) else 0)
    return os.path.exists(path) and os.access(path, mode)


def check_data(data: str, configs: Sequence[str]) -> Preflight:
    """Each dataset's folder, image folder and split file (or annotation files) under the datasets root."""
    if not data or data == "$DATA" or not os.path.isdir(data):
        return Preflight([f"datasets root {data or '(none)'!r} is not a folder: pass --data (or set DATA) to the "
                          f"folder holding the datasets ({DOCS})"])
    found = Preflight()
    for config in dict.fromkeys(configs):
        with open(os.path.join(REPO_ROOT, "configs", "datasets", f"{config}.yaml")) as f:
            cls = DATASET_REGISTRY.get(yaml.safe_load(f)["DATASET"]["NAME"])
        if not issubclass(cls, BenchmarkDataset):
            found.notes.append(f"{config}: {cls.__name__} declares no layout, not checked")
            continue
        name, folder = cls.__name__, os.path.join(data, cls.folder)
        docs = f"see {DOCS}#{cls.doc_anchor or name.lower()}"
        download = f"python -m datasets.download splits --root {data} --dataset {name}"
        image_dir = os.path.join(folder, cls.image_folder)
        if not _readable(folder):
            found.problems.append(f"{config}: dataset folder {folder} is missing or unreadable: put {name} there "
                                  f"({docs}) or leave {config} out of --datasets")
            continue
        if not _readable(image_dir):
            found.problems.append(f"{config}: image folder {image_dir} is missing or unreadable ({docs})")
        raw = [os.path.join(folder, f) for f in cls.raw_files]
        missing_raw = [p for p in raw if not _readable(p)]
        if cls.split_file:
            split = os.path.join(folder, cls.split_file)
            if _readable(split):
                continue
            if missing_raw or not raw:
                found.problems.append(f"{config}: split file {split} is missing or unreadable: {download}")
            else:
                found.notes.append(f"{config}: no official split {split}; a split is built from the annotations "
                                   f"and results are not comparable with published ones (get it: {download})")
        elif missing_raw:
            found.problems.append(f"{config}: {', '.join(missing_raw)} missing or unreadable ({docs})")
    return found


def check_backbone(backbone: str) -> Preflight:
    """The weights are a file that exists, or a name open_clip can fetch (cached or downloaded at first use)."""
    if os.path.isfile(backbone):
        readable = os.access(backbone, os.R_OK)
        return Preflight([] if readable else [f"backbone file {backbone} is not readable: fix its permissions"])
    open_clip = import_open_clip()
    if backbone in OPENAI_MODELS:
        if "openai" not in open_clip.list_pretrained_tags_by_model(OPENAI_MODELS[backbone]):
            return Preflight([f"backbone {backbone}: this open_clip has no OpenAI weights for {OPENAI_MODELS[backbone]}: "
                              "upgrade open_clip_torch, or pass --backbone /path/to/weights.pt"])
        path = openai_weights_path(backbone)
        if os.path.isfile(path):
            return Preflight(notes=[f"backbone {backbone}: weights cached at {path}"])
        return Preflight(notes=[f"backbone {backbone}: weights not in the local cache ({path}); the first run "
                                "downloads them (needs internet; or copy the file there, or pass --backbone FILE)"])
    if ":" in backbone and not backbone.startswith(("hf-hub:", "local-dir:")):
        arch, tag = backbone.split(":", 1)
        if (arch, tag) not in open_clip.list_pretrained():
            return Preflight([f"backbone {backbone}: open_clip lists no weights {tag!r} for {arch!r}: pick a pair "
                              "from open_clip.list_pretrained()"])
        return Preflight(notes=[f"backbone {backbone}: open_clip fetches it at the first run unless cached"])
    if backbone.startswith("hf-hub:"):
        return Preflight(notes=[f"backbone {backbone}: fetched from the Hugging Face hub at the first run"])
    if backbone.startswith("local-dir:") and os.path.isdir(backbone.split(":", 1)[1]):
        return Preflight()
    return Preflight([f"backbone {backbone}: no such file, and not an OpenAI name ({', '.join(OPENAI_MODELS)}) nor an "
                      "open_clip 'architecture:pretrained' pair: pass an existing checkpoint file or a valid name"])


def check_disk(cache_dir: str, backbone: str, cost: Optional[Dict]) -> Preflight:
    """The views still to encode, in fp16, against the free space where the cache goes."""
    if not cost:
        return Preflight()
    need = cost["to_encode_views"] * EMBED_DIMS.get(backbone, 1024) * 2
    where = cache_dir
    while not os.path.isdir(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    free = shutil.disk_usage(where).free
    if need > free:
        return Preflight([f"feature cache {cache_dir} needs {need / GB:.1f} GB and {where} has {free / GB:.1f} GB "
                          "free: free space, or pass --cache-dir (CACHE_DIR) on a larger disk"])
    return Preflight(notes=[f"feature cache {cache_dir}: about {need / GB:.1f} GB to write, {free / GB:.1f} GB free"])


def check_grid(req: GridRequest, cells: Sequence[Cell], cost: Optional[Dict]) -> Preflight:
    """Everything a planned grid reads: its datasets (trained and evaluated), its backbone, its cache's disk."""
    found = check_data(req.data, [c.dataset for c in cells if not c.finished])
    found += check_backbone(req.backbone)
    found += check_disk(req.cache_dir, req.backbone, cost)
    return found


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.reproduce.preflight", description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("DATA", ""), help="datasets root (default: $DATA)")
    p.add_argument("--datasets", nargs="+", required=True, help="dataset config names")
    p.add_argument("--backbone", default="RN50")
    p.add_argument("--output", default=os.environ.get("OUTPUT", "output"))
    p.add_argument("--cache-dir", default="", help="default: OUTPUT/feature_cache")
    p.add_argument("--methods", nargs="+", default=[], help="with --shots/--seeds: estimate the cache's disk need")
    p.add_argument("--shots", nargs="+", type=int, default=[16])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    req = GridRequest(args.methods, args.datasets, args.shots, args.seeds, args.backbone, args.data or "$DATA",
                      args.output, args.cache_dir)
    found = check_data(req.data, req.datasets)
    found += check_backbone(req.backbone)
    if args.methods:
        try:
            found += check_disk(req.cache_dir, req.backbone, encoder_cost(plan_runs(req), req.cache_dir))
        except PLANNING_ERRORS as err:
            found.problems += str(err).splitlines()
    print("\n".join(found.lines()))
    return 1 if found.problems else 0


if __name__ == "__main__":
    sys.exit(main())
