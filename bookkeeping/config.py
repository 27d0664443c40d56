"""A run's merged config from CoOp's command line (``train.py``'s flags), shared by ``train.py``, the planner and the grid.

Merge order: engine defaults -> loop/dataset/method keys -> dataset YAML -> method YAML -> flags -> trailing
``KEY VALUE`` overrides. Each method's result variants add their flag (TaskRes's ``--enhanced-base``).
"""
import argparse
import difflib
import functools
import os
import re
from typing import Dict, Sequence

import yaml

import datasets
import trainers
from engine import get_cfg_default
from engine.checkpoint import flatten_config
from engine.loop import add_loop_config

# Launchers set this so that messages name their variables (``BACKBONE=``) instead of train.py's flags.
LAUNCHER_ENV = "TASKRES_LAUNCHER"
LAUNCHER_NAMES = {"--backbone": "BACKBONE", "--root": "DATA", "--output-dir": "OUTPUT", "--seed": "SEEDS",
                  "--cache-dir": "CACHE_DIR", "--enhanced-base": "ENHANCED_BASE", "DATASET.ROOT": "DATA"}


class UserError(Exception):
    """A mistake in how the program was called; printed as one line, exit code 2."""


def in_user_terms(message: str) -> str:
    """``message`` naming the launcher's variables when a launcher runs us (``--backbone X`` -> ``BACKBONE=X``).
    Config keys stay as they are: a launcher's user passes them too (trailing ``KEY VALUE`` pairs)."""
    if not os.environ.get(LAUNCHER_ENV):
        return message
    for flag, var in LAUNCHER_NAMES.items():
        if flag.startswith("--"):  # "--backbone X" -> "BACKBONE=X"
            message = re.sub(rf"{flag} (?=[^\s(])", f"{var}=", message)
        message = re.sub(rf"{re.escape(flag)}\b", var, message)
    return message


def result_variants() -> list:
    """Every declared result variant with a ``train.py`` flag (TaskRes's ``--enhanced-base``)."""
    return [v for name in trainers.declared_methods() for v in trainers.method_spec(name).variants if v.flag]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py", description="Train or evaluate one method on one dataset.")
    p.add_argument("--root", type=str, default="", help="path to the datasets root")
    p.add_argument("--output-dir", type=str, default="", help="output directory")
    p.add_argument("--resume", type=str, default="", help="checkpoint directory to resume from")
    p.add_argument("--seed", type=int, default=-1, help="only positive values enable a fixed seed")
    p.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    p.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    p.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    p.add_argument("--config-file", type=str, default="", help="path to the method's config file")
    p.add_argument("--dataset-config-file", type=str, default="", help="path to the dataset's config file")
    p.add_argument("--trainer", type=str, default="", help="name of the trainer (method)")
    p.add_argument("--backbone", type=str, default="", help="CLIP backbone: RN50, ViT-B/16, arch:pretrained or a file")
    p.add_argument("--head", type=str, default="", help="name of the head (unused by CLIP methods)")
    p.add_argument("--eval-only", action="store_true", help="evaluation only")
    p.add_argument("--model-dir", type=str, default="", help="load the model from this directory for eval-only")
    p.add_argument("--load-epoch", type=int, help="load the model weights of this epoch for evaluation")
    p.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    for v in result_variants():
        p.add_argument(v.flag, type=str, default="", help=v.help or f"sets {v.key}")
    p.add_argument("--cache-dir", type=str, default="", help="feature cache folder (FEATURE_CACHE.DIR)")
    p.add_argument("--no-cache", action="store_true", help="run the image encoder on every batch (original behaviour)")
    p.add_argument("--reuse", action="store_true",
                   help="launcher mode: --output-dir names the recipe's run (.../<tag>/seed<S>); a config that differs "
                        "from the recipe runs in .../<tag>_<8 hex>/seed<S>; a finished run with the same identity is "
                        "reused, not rerun; a folder holding another identity stops with one line")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="modify config options (KEY VALUE pairs)")
    return p


def base_config():
    """Every layer's defaults, before any file or flag."""
    cfg = get_cfg_default()
    add_loop_config(cfg)
    datasets.add_dataset_config(cfg)
    trainers.add_trainer_configs(cfg)
    return cfg


def merge_file(cfg, path: str, label: str) -> None:
    if not os.path.isfile(path):
        raise UserError(f"The {label} file {path} does not exist")
    try:
        cfg.merge_from_file(path)
    except Exception as err:  # yacs raises KeyError, ValueError, yaml errors: all mean "this file is wrong"
        raise UserError(f"Cannot read the {label} file {path}: {err}") from err


def merge_opts(cfg, opts: Sequence[str]) -> None:
    """Merge ``KEY VALUE`` pairs; an unknown key or a bad value fails in one line naming that pair alone."""
    opts = list(opts)
    if len(opts) % 2:
        raise UserError(f"KEY VALUE overrides come in pairs; {opts[-1]!r} has no value")
    known = list(flatten_config(cfg))
    for key, value in zip(opts[::2], opts[1::2]):
        if key not in known:
            close = difflib.get_close_matches(key, known, 1, 0.8)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"Unknown config key {key}{hint}")
        try:
            cfg.merge_from_list([key, value])
        except Exception as err:  # yacs: a value of the wrong type
            raise UserError(f"Bad value for {key}: {value!r} ({err})") from None


def setup_cfg(args):
    """The frozen config a ``train.py`` command line describes."""
    cfg = base_config()
    for label, path in (("dataset config", args.dataset_config_file), ("config", args.config_file)):
        if path:
            merge_file(cfg, path, label)
    flags = {"DATASET.ROOT": args.root, "OUTPUT_DIR": args.output_dir, "RESUME": args.resume,
             "TRAINER.NAME": args.trainer, "MODEL.BACKBONE.NAME": args.backbone, "MODEL.HEAD.NAME": args.head,
             "FEATURE_CACHE.DIR": args.cache_dir, "DATASET.SOURCE_DOMAINS": args.source_domains,
             "DATASET.TARGET_DOMAINS": args.target_domains, "INPUT.TRANSFORMS": args.transforms}
    flags.update({v.key: getattr(args, v.flag.lstrip("-").replace("-", "_")) for v in result_variants()})
    for key, value in flags.items():
        if value:
            *path, leaf = key.split(".")
            functools.reduce(lambda node, part: node[part], path, cfg)[leaf] = value
    if args.seed >= 0:
        cfg.SEED = args.seed
    if args.no_cache:
        cfg.FEATURE_CACHE.ENABLED = False
    merge_opts(cfg, args.opts or [])
    cfg.freeze()
    return cfg


def parse(argv: Sequence[str]):
    """``(args, cfg)`` of a ``train.py`` command line."""
    args = build_parser().parse_args(list(argv))
    return args, setup_cfg(args)


def dataset_config_names(repo_root: str) -> Dict[str, str]:
    """``DATASET.NAME`` -> config name (``Caltech101`` -> ``caltech101``), read from ``configs/datasets/*.yaml``."""
    folder = os.path.join(repo_root, "configs", "datasets")
    names: Dict[str, str] = {}
    for fname in sorted(os.listdir(folder)):
        if fname.endswith(".yaml"):
            with open(os.path.join(folder, fname)) as f:
                names[(yaml.safe_load(f) or {}).get("DATASET", {}).get("NAME", "")] = fname[:-5]
    return names
