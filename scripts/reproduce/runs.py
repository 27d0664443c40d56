"""Where a run goes and whether it follows the published recipe: one rule for the launchers, the grid and the demo.

A run folder is named for the recipe's run, ``OUTPUT/<dataset>/<Trainer>/<backbone>_<K>shots/seed<S>``.
A run whose effective config differs from the recipe (any key outside ``engine.identity.LAUNCH_ONLY_KEYS``:
epochs, alpha, input size, views, ...) goes to ``<backbone>_<K>shots_<8 hex>/seed<S>`` instead, the suffix
being a hash of *what* differs, so every seed of one modification shares a folder. A folder holding a
finished run is reused only when the run's identity (``metrics.json``'s ``fingerprint``) is the
request's; a folder holding another identity stops the request with one line.

"Recipe" (``metrics.json``'s ``recipe: true``) means: the effective config equals what ``recipes.py``
gives for that method, dataset and shot count, on one of the paper's backbones. TaskRes* is TaskRes's
recipe plus an enhanced base (named ``_enhanced`` by the launchers).

    python -m scripts.reproduce.runs recipe TaskRes caltech101 16      # the recipe's train.py arguments
    python -m scripts.reproduce.runs plan --seeds "1 2" -- TRAIN_ARGS  # per seed: state, folder, changes
"""
import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from scripts.reproduce.recipes import RECIPES, REPO_ROOT, Recipe, RecipeError

logger = logging.getLogger(__name__)

# The backbones the paper (and its configs) report; a run on another backbone is never "recipe".
PAPER_BACKBONES = ("RN50", "RN101", "ViT-B/32", "ViT-B/16", "RN50x16")

# Keys a launcher names in the folder itself (TaskRes*: ``_enhanced``): taken from the run, not compared.
FOLDER_NAMED_KEYS = ("TRAINER.TaskRes.ENHANCED_BASE",)
# The evaluation protocol's keys: a run under a protocol follows its recipe *of that protocol* (its reference
# takes them from the run), and its folder is named for them (``protocol_dir``): ``DATASET.SUBSAMPLE_CLASSES``
# base/new (base-to-novel) and ``DATASET.TRACK`` valfree (for methods that select on val; the key is no part
# of the identity of a method that reads no validation data, nor at its default, so those runs are shared).
PROTOCOL_KEYS = ("DATASET.SUBSAMPLE_CLASSES", "DATASET.TRACK")
DEFAULT_TRACK = "paper"  # datasets.DEFAULT_TRACK (not imported: runs.py stays torch-free at import; a test checks)


def input_size(backbone: str) -> int:
    """The image side a backbone was trained at (``scripts/common.sh``'s ``input_size``)."""
    return {"RN50x4": 288, "RN50x16": 384, "RN50x64": 448, "ViT-L/14@336px": 336}.get(backbone, 224)


def find_recipe(method: str) -> Optional[Recipe]:
    return RECIPES.get(method)


def recipe_argv(method: str, dataset: str, shots: int, backbone: str) -> List[str]:
    """``train.py`` arguments of the recipe run (without root, seed, output and cache folders).

    ``dataset`` is a config name (``caltech101``). The grid, the launchers and the reference a run is
    compared with are all built from this list, so they cannot disagree.
    """
    recipe = find_recipe(method)
    if recipe is None:
        raise RecipeError(f"No recipe for method {method!r}; known: {', '.join(RECIPES)}")
    argv = ["--trainer", recipe.trainer, "--dataset-config-file", f"configs/datasets/{dataset}.yaml",
            "--backbone", backbone]
    config = recipe.config_path()
    if config:
        argv += ["--config-file", config]
    size = input_size(backbone)
    return argv + recipe.options(dataset, shots) + ["DATASET.NUM_SHOTS", str(shots), "INPUT.SIZE", f"({size}, {size})"]


@dataclass
class RunIdentity:
    """What makes a run's result: ``fingerprint`` of the effective config, and how it differs from the recipe."""

    fingerprint: str
    flat: Dict[str, str]
    deviation: Dict[str, Tuple[Optional[str], Optional[str]]] = field(default_factory=dict)
    variant: str = ""              # 8 hex of the deviation; "" for the recipe's (or the launcher default's) run
    recipe: bool = False           # the published recipe, on a paper backbone
    has_reference: bool = False    # a recipe exists to compare with

    def as_metrics(self) -> dict:
        return {"fingerprint": self.fingerprint, "recipe": self.recipe, "variant": self.variant or None,
                "modified": {k: [a, b] for k, (a, b) in self.deviation.items()}}


def _shot_free(method: str) -> bool:
    import trainers

    recipe = find_recipe(method)
    return bool(recipe.shot_free) if recipe is not None else trainers.method_spec(method).shot_free




def transfers_to_other_classes(method: str) -> bool:
    """Whether a trained model of the method can be evaluated on classes it was not trained on: a shot-free
    method (nothing trained) or one whose trained state is class-agnostic (``class_agnostic``: prompts, LoRA).
    Per-class state (TaskRes's residual, a linear probe, Tip-Adapter's cache) cannot be."""
    import trainers

    if _shot_free(method):
        return True
    try:
        return trainers.method_spec(method).class_agnostic
    except trainers.UnknownMethodError:
        return False


def _drop_neutral(flat: Dict[str, str], method: str) -> Dict[str, str]:
    """``flat`` without ``DATASET.TRACK`` where the track cannot change the result: at its default (runs from
    before the key existed keep their identity) and for methods that read no validation data (one run serves
    both tracks)."""
    import trainers

    track = flat.get("DATASET.TRACK")
    if track is not None and (track == repr(DEFAULT_TRACK) or not trainers.method_spec(method).selects_on_val):
        flat = {k: v for k, v in flat.items() if k != "DATASET.TRACK"}
    return flat


def protocol_suffix(classes: str, track: str, method: str) -> str:
    """``_base``/``_new`` for a class subset, ``_valfree`` for a selecting method's validation-free run."""
    import trainers

    suffix = f"_{classes}" if classes and classes != "all" else ""
    if track and track != DEFAULT_TRACK and trainers.method_spec(method).selects_on_val:
        suffix += f"_{track}"
    return suffix


def protocol_dir(recipe_dir: str, cfg) -> str:
    """``.../<tag>/seed1`` -> ``.../<tag><protocol suffix>/seed1`` (idempotent; unchanged for the few-shot protocol)."""
    suffix = protocol_suffix(str(cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")), str(cfg.DATASET.get("TRACK", "")),
                             cfg.TRAINER.NAME)
    parent, leaf = os.path.split(os.path.normpath(recipe_dir))
    if suffix and not parent.endswith(suffix):
        parent = parent + suffix
    return os.path.join(parent, leaf)


def run_folder(cfg, ident: "RunIdentity", evaluation: bool = False) -> str:
    """Where ``train.py --reuse`` runs: the recipe folder named for the protocol, then for the deviation."""
    if evaluation:  # an evaluation's folder is given in full (``<run>/eval_<x>``)
        return variant_dir(cfg.OUTPUT_DIR, ident.variant)
    return variant_dir(protocol_dir(cfg.OUTPUT_DIR, cfg), ident.variant)


def identity_ignore(method: str) -> Tuple[str, ...]:
    """Keys outside a run's identity: the launch-only ones, and the shot count of a shot-free method."""
    from engine.identity import LAUNCH_ONLY_KEYS

    return LAUNCH_ONLY_KEYS + (("DATASET.NUM_SHOTS",) if _shot_free(method) else ())


_REFERENCES: Dict[Tuple[str, ...], Dict[str, str]] = {}


def _reference_flat(cfg) -> Optional[Dict[str, str]]:
    """The flattened config of the recipe run with this run's method, dataset, shots, backbone and seed."""
    from engine.identity import flatten_config
    from tools.names import config_name

    method, dataset = cfg.TRAINER.NAME, config_name(cfg.DATASET.NAME)
    if find_recipe(method) is None or dataset is None:
        return None
    try:
        argv = recipe_argv(method, dataset, int(cfg.DATASET.NUM_SHOTS), cfg.MODEL.BACKBONE.NAME)
    except RecipeError:
        return None
    for key in PROTOCOL_KEYS:  # the recipe of the run's protocol
        node, leaf = key.split(".")
        if leaf in cfg[node]:
            argv += [key, str(cfg[node][leaf])]
    argv = [os.path.join(REPO_ROOT, a) if a.startswith("configs/") else a for a in argv]
    key = tuple(argv)
    if key not in _REFERENCES:
        import train

        _REFERENCES[key] = _drop_neutral(flatten_config(train.setup_cfg(train.build_parser().parse_args(argv)),
                                                        identity_ignore(method) + ("SEED",) + FOLDER_NAMED_KEYS),
                                         method)
    flat = dict(_REFERENCES[key])
    return flat


def identify(cfg, eval_of: Optional[Tuple[str, Optional[int]]] = None) -> RunIdentity:
    """The identity of the run ``cfg`` describes; ``eval_of`` = (model dir, epoch) for an eval-only run."""
    from engine.identity import deviation, fingerprint, flatten_config, variant_suffix

    method = cfg.TRAINER.NAME
    flat = _drop_neutral(flatten_config(cfg, identity_ignore(method)), method)
    if eval_of is not None:
        # An evaluation is the evaluated weights plus how they are evaluated.
        flat["EVAL.MODEL_DIR"] = repr(os.path.abspath(eval_of[0]) if eval_of[0] else "")
        flat["EVAL.LOAD_EPOCH"] = repr(eval_of[1])
        source = _read_metrics(eval_of[0]) if eval_of[0] else None
        return RunIdentity(fingerprint(flat), flat, recipe=bool(source and source.get("recipe")))
    reference = _reference_flat(cfg)
    if reference is None:
        return RunIdentity(fingerprint(flat), flat)
    compared = {k: v for k, v in flat.items() if k != "SEED" and k not in FOLDER_NAMED_KEYS}
    dev = deviation(compared, reference)
    import trainers

    recipe = (not dev and trainers.method_spec(method).published_recipe
              and cfg.MODEL.BACKBONE.NAME in PAPER_BACKBONES)
    return RunIdentity(fingerprint(flat), flat, dev, variant_suffix(dev), recipe, True)


def variant_dir(recipe_dir: str, variant: str) -> str:
    """``.../<tag>/seed1`` -> ``.../<tag>_<variant>/seed1`` (unchanged for the recipe run; idempotent)."""
    parent, leaf = os.path.split(os.path.normpath(recipe_dir))
    if variant and not parent.endswith("_" + variant):
        parent = f"{parent}_{variant}"
    return os.path.join(parent, leaf)


def _read_metrics(folder: str) -> Optional[dict]:
    try:
        with open(os.path.join(folder, "metrics.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _stored_flat(folder: str, method: str) -> Optional[Dict[str, str]]:
    """The identity keys of a finished run's ``config.yaml`` (None when unreadable)."""
    path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(path):
        return None
    try:
        import datasets
        import trainers
        from engine import get_cfg_default
        from engine.identity import flatten_config

        cfg = get_cfg_default()
        datasets.add_dataset_config(cfg)
        trainers.add_trainer_configs(cfg)
        cfg.set_new_allowed(True)
        cfg.merge_from_file(path)
        return _drop_neutral(flatten_config(cfg, identity_ignore(method)), method)
    except Exception:  # a config from another version: unknown keys, bad values
        return None


def folder_state(folder: str, ident: RunIdentity) -> Tuple[str, str]:
    """("run" | "done" | "conflict", why): may this request run in ``folder``, or reuse what is there?"""
    from engine.identity import describe_deviation, deviation, fingerprint

    metrics = _read_metrics(folder)
    if metrics is None:
        return "run", ""
    method = metrics.get("method", "")
    theirs = metrics.get("fingerprint")
    stored = _stored_flat(folder, method) if method else None
    if theirs is None and stored is not None:
        extra = {k: v for k, v in ident.flat.items() if k.startswith("EVAL.")}
        theirs = fingerprint({**stored, **extra})
    if theirs == ident.fingerprint:
        return "done", "finished, same config"
    diff = deviation({k: v for k, v in ident.flat.items() if not k.startswith("EVAL.")}, stored) if stored else {}
    what = f" (differs in: {describe_deviation({k: (b, a) for k, (a, b) in diff.items()}, limit=4)})" if diff else ""
    return "conflict", (f"{folder} holds a finished run with another config{what}; move or delete that folder, "
                        f"or pick another OUTPUT, to run this one")


def eval_of(args) -> Optional[Tuple[str, Optional[int]]]:
    return (args.model_dir, args.load_epoch) if getattr(args, "eval_only", False) else None


@dataclass
class Plan:
    seed: str
    state: str
    folder: str
    identity: RunIdentity
    note: str = ""


def plan(train_argv: Sequence[str], seeds: Sequence[str]) -> List[Plan]:
    """For each seed (``{seed}`` in an argument is replaced): where ``train.py --reuse`` would run and whether it would."""
    import train
    from engine.identity import describe_deviation

    plans = []
    for seed in seeds:
        argv = [a.replace("{seed}", str(seed)) for a in train_argv]
        args = train.build_parser().parse_args(argv)
        cfg = train.setup_cfg(args)
        ident = identify(cfg, eval_of(args))
        folder = run_folder(cfg, ident, eval_of(args) is not None) if args.reuse else cfg.OUTPUT_DIR
        state, why = folder_state(folder, ident)
        if state == "conflict":
            raise train.UserError(why)
        note = why
        if ident.deviation:
            note = f"modified run: {describe_deviation(ident.deviation)}"
        plans.append(Plan(str(seed), state, folder, ident, note))
    return plans


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m scripts.reproduce.runs", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recipe", help="print the recipe's train.py arguments, one per line")
    r.add_argument("method")
    r.add_argument("dataset")
    r.add_argument("shots", type=int)
    r.add_argument("--backbone", default="RN50")
    pl = sub.add_parser("plan", help="print 'STATE<TAB>FOLDER<TAB>NOTE' per seed for a train.py command line")
    pl.add_argument("--seeds", default="1")
    pl.add_argument("train_argv", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    try:
        if args.command == "recipe":
            print("\n".join(recipe_argv(args.method, args.dataset, args.shots, args.backbone)))
            return 0
        train_argv = args.train_argv[1:] if args.train_argv[:1] == ["--"] else args.train_argv
        for pl in plan(train_argv, args.seeds.split()):
            print(f"{pl.state}\t{pl.folder}\t{pl.note}")
        return 0
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__name__ == "UserError":
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
