"""Collect a tree of runs into rows: method, dataset, backbone, shots, seed, accuracy.

A run is a folder holding ``metrics.json``; older runs and Dassl/CoOp's own are read from ``log.txt``. How
runs are found and read, and the fields of schema 1 (``tools.legacy``) and 2: docs/reports.md. Nothing here
imports the training code.
"""
import argparse
import contextlib
import csv
import json
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import yaml

from tools.legacy import MethodNames, names_of, schema1_tracks
from tools.names import OPENAI_BACKBONES, TRACK_NAMES, backbone_tag, dataset_name

logger = logging.getLogger(__name__)

SKIP_DIRS = {"feature_cache", ".submitit", "tensorboard", "__pycache__"}
_ACC_RE = re.compile(r"\*\s*accuracy:\s*([0-9.]+)%")
_TEST_MARK = "Evaluate on the *test* set"
_LAYOUT_RE = re.compile(r"^(?P<tag>.+)_(?:(?P<shots>\d+)shots(?P<enhanced>_enhanced)?|zeroshot)"
                        r"(?:_(?P<classes>base|new))?(?:_(?P<track>" + "|".join(TRACK_NAMES) + r"))?"
                        r"(?:_(?P<variant>[0-9a-f]{8}))?$")
SCHEMA = 2  # the newest metrics.json schema this module reads
_SEED_RE = re.compile(r"^seed(?P<seed>\d+)$")


@dataclass
class RunRow:
    method: str
    dataset: str            # DATASET.NAME
    backbone: str
    shots: int
    seed: int
    accuracy: float
    macro_f1: Optional[float] = None
    kind: str = "run"       # "run" (trained/evaluated in its own folder) or "eval" (<run>/eval_<dataset>/)
    source: str = "metrics.json"
    path: str = ""
    variant: str = ""       # "" for the recipe's run; 8 hex naming how a modified run differs from it
    classes: str = "all"    # DATASET.SUBSAMPLE_CLASSES: all, base or new (base-to-novel)
    tracks: str = "+".join(TRACK_NAMES)  # selection tracks whose rules the run satisfies, "+"-joined
    source_dataset: str = ""   # eval rows: the dataset the evaluated model was trained on
    class_agnostic: bool = False  # the method's trained state transfers to unseen classes
    label: str = ""            # the method's display name ("" : the method's name)
    table_order: Optional[int] = None
    shot_free: bool = False
    selects_on_val: bool = False
    schema: int = 1            # the metrics.json schema the row was read from (1: also log.txt)

    def __post_init__(self):
        self.label = self.label or self.method

    def in_track(self, track: str) -> bool:
        return track in self.tracks.split("+")


@dataclass
class Collection:
    rows: List[RunRow] = field(default_factory=list)
    unfinished: List[str] = field(default_factory=list)   # run folders without a test accuracy
    unreadable: List[str] = field(default_factory=list)   # "<file>: <why>" for files that name no run
    duplicates: List[str] = field(default_factory=list)   # folders whose (method, dataset, ...) was seen already


def _backbone(tag: str) -> str:
    """An OpenAI backbone name for a folder tag (``rn50`` -> ``RN50``); other tags stay as they are."""
    return next((b for b in OPENAI_BACKBONES if backbone_tag(b) == tag), tag)


def _is_enhanced(run_dir: str, config: dict) -> bool:
    parts = os.path.normpath(run_dir).split(os.sep)
    return any(p.endswith("_enhanced") for p in parts[-3:]) or bool(
        ((config.get("TRAINER") or {}).get("TaskRes") or {}).get("ENHANCED_BASE"))


def _read_config(run_dir: str) -> dict:
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:  # an unreadable config only loses the fall-back identity
        logger.warning("Cannot read %s: %s", path, err)
        return {}


def _from_metrics(run_dir: str, kind: str) -> RunRow:
    with open(os.path.join(run_dir, "metrics.json")) as f:
        m = json.load(f)
    schema = int(m.get("schema") or 1)
    if schema > SCHEMA:
        raise ValueError(f"schema {schema} is newer than this report reads ({SCHEMA}); update the repository")
    if schema >= 2:
        method = m["result_name"]
        names = MethodNames(m["label"], m["table_order"], bool(m["shot_free"]), bool(m["selects_on_val"]))
        tracks = list(m["tracks"])
    else:
        method = m["method"]
        if method == "TaskRes" and _is_enhanced(run_dir, _read_config(run_dir)):
            method = "TaskRes*"
        names = names_of(method)
        tracks = schema1_tracks(method, m.get("track"), bool(m.get("read_validation", False)), TRACK_NAMES)
    marks = (m.get("variant") or _folder_variant(run_dir, kind),
             "built-split" * (m.get("official_split") is False),  # from raw annotations: another test set
             "fast-views" * ((m.get("feature_cache_info") or {}).get("paper_protocol") is False))  # k views
    variant = "+".join(filter(None, marks))
    # an evaluation from before sources were recorded is ImageNet's
    source_dataset = dataset_name((m.get("source") or {}).get("dataset") or "ImageNet") if kind == "eval" else ""
    return RunRow(method=method, dataset=dataset_name(m["dataset"]), backbone=m["backbone"],
                  shots=0 if names.shot_free else int(m["shots"]), seed=int(m["seed"]), accuracy=float(m["accuracy"]),
                  macro_f1=m.get("macro_f1"), kind=kind, source="metrics.json", path=run_dir, variant=variant,
                  classes=str(m.get("classes") or "all"), tracks="+".join(tracks), source_dataset=source_dataset,
                  class_agnostic=bool(m.get("class_agnostic", False)), schema=schema, **names._asdict())


def _folder_variant(run_dir: str, kind: str) -> str:
    """The ``_<8 hex>`` of a ``<tag>_<8 hex>/seed<S>`` folder (the run's, for an ``eval_<dataset>`` folder)."""
    parts = os.path.normpath(run_dir).split(os.sep)
    if kind == "eval":
        parts = parts[:-1]
    match = _LAYOUT_RE.match(parts[-2]) if len(parts) >= 2 and _SEED_RE.match(parts[-1]) else None
    return (match["variant"] or "") if match else ""


def parse_log_accuracy(path: str) -> Optional[float]:
    """The test accuracy of a ``log.txt``: the first accuracy after the last test-set marker, else the last one."""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    marks = [i for i, line in enumerate(lines) if _TEST_MARK in line]
    start = marks[-1] if marks else 0
    accs = [float(m.group(1)) for line in lines[start:] if (m := _ACC_RE.search(line))]
    return (accs[0] if marks else accs[-1]) if accs else None


def _from_log(run_dir: str, kind: str) -> Optional[RunRow]:
    acc = parse_log_accuracy(os.path.join(run_dir, "log.txt"))
    if acc is None:
        return None
    cfg = _read_config(run_dir)
    parts = os.path.normpath(run_dir).split(os.sep)
    seed_dir = _SEED_RE.match(parts[-1]) if len(parts) >= 4 else None
    tag = _LAYOUT_RE.match(parts[-2]) if seed_dir else None
    layout = dict(dataset=parts[-4], method=parts[-3], shots=int(tag["shots"] or 0), backbone=_backbone(tag["tag"]),
                  seed=int(seed_dir["seed"])) if tag else {}
    trainer_cfg, data_cfg, model_cfg = (cfg.get(node) or {} for node in ("TRAINER", "DATASET", "MODEL"))
    try:
        method = trainer_cfg.get("NAME") or layout["method"]
        dataset = data_cfg.get("NAME") or layout["dataset"]
        backbone = (model_cfg.get("BACKBONE") or {}).get("NAME") or layout["backbone"]
        shots = int(data_cfg["NUM_SHOTS"]) if data_cfg.get("NUM_SHOTS") is not None else layout["shots"]
        seed = int(cfg["SEED"]) if cfg.get("SEED") is not None else layout["seed"]
    except KeyError:
        raise ValueError("no metrics.json, and neither config.yaml nor the folder layout names the run") from None
    if method == "TaskRes" and _is_enhanced(run_dir, cfg):
        method = "TaskRes*"
    names = names_of(method)
    track = data_cfg.get("TRACK") or (tag["track"] if tag else None)
    return RunRow(method=method, dataset=dataset_name(dataset), backbone=backbone, shots=0 if names.shot_free else shots,
                  seed=seed, accuracy=acc, kind=kind, source="log.txt", path=run_dir,
                  variant=_folder_variant(run_dir, kind), classes=str(data_cfg.get("SUBSAMPLE_CLASSES") or "all"),
                  tracks="+".join(schema1_tracks(method, track, False, TRACK_NAMES)),
                  source_dataset="ImageNet" * (kind == "eval"), **names._asdict())


def collect(root: str) -> Collection:
    """Walk ``root`` and read every run below it (sorted, so the result does not depend on the file system)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Results folder {root} does not exist")
    out = Collection()
    rows: List[RunRow] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        name = "metrics.json" if "metrics.json" in filenames else "log.txt" if "log.txt" in filenames else ""
        if not name:
            continue
        kind = "eval" if os.path.basename(dirpath).startswith("eval_") else "run"
        try:
            row = _from_metrics(dirpath, kind) if name == "metrics.json" else _from_log(dirpath, kind)
        except (OSError, ValueError, KeyError, TypeError) as err:
            why = f"no {err.args[0]!r} field" if isinstance(err, KeyError) else str(err)
            out.unreadable.append(f"{os.path.join(dirpath, name)}: {why}")
            logger.warning("Unreadable %s", out.unreadable[-1])
            continue
        if row is None:  # only a log.txt lacks an accuracy
            logger.warning("No test accuracy (unfinished or failed run): %s", dirpath)
            out.unfinished.append(dirpath)
        else:
            rows.append(row)
    # A log-only run names its backbone by the folder tag; take the full name from runs with metrics.json.
    full_names = {backbone_tag(r.backbone): r.backbone for r in rows if r.source == "metrics.json"}
    seen: Dict[Tuple, str] = {}
    for row in rows:
        if row.source == "log.txt":
            row.backbone = full_names.get(row.backbone, row.backbone)
        key = (row.method, row.dataset, row.backbone, row.shots, row.seed, row.kind, row.variant, row.classes,
               row.tracks, row.source_dataset)
        if key in seen:
            logger.warning("Duplicate run %s (same as %s); keeping the first", row.path, seen[key])
            out.duplicates.append(row.path)
            continue
        seen[key] = row.path
        out.rows.append(row)
    return out


def write_csv(path: str, fieldnames: List[str], records: Iterable[dict]) -> None:
    """A CSV file with a header line; ``-`` writes to standard output."""
    with open(path, "w", newline="") if path != "-" else contextlib.nullcontext(sys.stdout) as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)


def write_rows_csv(rows: List[RunRow], path: str) -> None:
    write_csv(path, list(RunRow.__dataclass_fields__), (asdict(row) for row in rows))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="List every run below a results folder as CSV (one row per run).")
    p.add_argument("root")
    p.add_argument("--out", default="-", help="CSV file (default: stdout)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = collect(args.root).rows
    write_rows_csv(rows, args.out)
    if args.out != "-":
        logger.info("%d runs written to %s", len(rows), args.out)


if __name__ == "__main__":
    main()
