"""A run's identity: exactly what can change its result, so that a finished run is reused only for the same result.

What it holds and leaves out, and how runs from before schema 2 are read: docs/bookkeeping.md.
"""
import functools
import os
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

import yaml

import trainers
from bookkeeping import recipes
from bookkeeping.config import UserError, base_config, dataset_config_names, parse
from datasets import check_track
from engine.checkpoint import fingerprint, flatten_config
from trainers.base import CACHE_LAUNCH_KEYS
from trainers.spec import MethodSpec, ResultVariant

SCHEMA = 2
# Keys (or nodes) of every run that never change its result.
LAUNCH_ONLY_KEYS: Tuple[str, ...] = ("OUTPUT_DIR", "RESUME", "VERBOSE", "USE_CUDA", "DATASET.ROOT",
                                     "DATALOADER.NUM_WORKERS", "DATALOADER.TEST.BATCH_SIZE", "TRAIN.PRINT_FREQ",
                                     "TRAIN.CHECKPOINT_FREQ", "TRAIN.RESUME_SAVE_S") + CACHE_LAUNCH_KEYS
# The evaluation protocol's keys: a run under a protocol follows the recipe of that protocol.
PROTOCOL_KEYS = ("DATASET.SUBSAMPLE_CLASSES", "DATASET.TRACK")
# The only selection a run could make before DATASET.TRACK existed.
LEGACY_TRACK = "fewshot_val"

Deviation = Dict[str, Tuple[Optional[str], Optional[str]]]


def deviation(flat: Mapping[str, str], reference: Mapping[str, str]) -> Deviation:
    """``{key: (reference value, this value)}`` for every key whose value differs (None: key absent)."""
    keys = sorted(set(flat) | set(reference))
    return {k: (reference.get(k), flat.get(k)) for k in keys if reference.get(k) != flat.get(k)}


def variant_suffix(dev: Deviation) -> str:
    """8 hex digits naming a set of changes from the recipe; the same changes give the same suffix."""
    return fingerprint({k: str(v[1]) for k, v in dev.items()}, length=8) if dev else ""


def describe_deviation(dev: Deviation, limit: int = 6) -> str:
    """``OPTIM.MAX_EPOCH 200 -> 2, INPUT.SIZE (224, 224) -> (32, 32)`` (at most ``limit`` items)."""
    items = [f"{k} {a} -> {b}" for k, (a, b) in dev.items()]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def spec_of_run(method: str) -> MethodSpec:
    try:
        return trainers.method_spec(method)
    except trainers.UnknownMethodError as err:
        raise UserError(str(err)) from None


def result_variant(cfg, spec: MethodSpec) -> Optional[ResultVariant]:
    """The result variant the run makes (TaskRes* when ``TRAINER.TaskRes.ENHANCED_BASE`` is set), if any."""
    for v in spec.variants:
        *path, leaf = v.key.split(".")
        if v.applies(functools.reduce(lambda node, part: node[part], path, cfg).get(leaf)):
            return v
    return None


def identity_flat(cfg, engine: str) -> Dict[str, str]:
    """The flattened keys that make the run's result (docs/bookkeeping.md), with ``ENGINE``."""
    spec = spec_of_run(cfg.TRAINER.NAME)
    others = tuple(f"TRAINER.{k}" for k in cfg.TRAINER if k not in ("NAME", spec.config_node))
    ignore = LAUNCH_ONLY_KEYS + others + tuple(spec.launch_only_keys)
    ignore += ("DATASET.NUM_SHOTS",) if spec.shot_free else ()
    ignore += () if spec.selects_on_val else ("DATASET.TRACK",)
    return {**flatten_config(cfg, ignore), "ENGINE": repr(engine)}


@dataclass
class RunIdentity:
    """What makes a run's result: ``fingerprint`` of ``flat``, and how it differs from the recipe."""

    fingerprint: str
    flat: Dict[str, str]
    spec: MethodSpec
    method: str
    result: Optional[ResultVariant] = None
    deviation: Deviation = field(default_factory=dict)
    variant: str = ""              # 8 hex of the deviation; "" for the recipe's run
    recipe: bool = False           # the published recipe, on a paper backbone

    def as_metrics(self) -> dict:
        """``metrics.json``'s identity and presentation fields (schema 2)."""
        return {"schema": SCHEMA, "fingerprint": self.fingerprint, "recipe": self.recipe,
                "variant": self.variant or None, "modified": {k: [a, b] for k, (a, b) in self.deviation.items()},
                "result_name": self.result.name if self.result else self.method,
                "label": self.result.label if self.result else (self.spec.label or self.method),
                "table_order": self.spec.table_order, "shot_free": self.spec.shot_free,
                "selects_on_val": self.spec.selects_on_val}


def recipe_reference(cfg, engine: str) -> Optional[Dict[str, str]]:
    """The identity keys of the recipe run with this run's method, dataset, shots, backbone and protocol."""
    method = cfg.TRAINER.NAME
    dataset = dataset_config_names(recipes.REPO_ROOT).get(cfg.DATASET.NAME)
    if method not in recipes.declared_recipes() or dataset is None:
        return None
    argv = recipes.recipe_argv(method, dataset, int(cfg.DATASET.NUM_SHOTS), cfg.MODEL.BACKBONE.NAME)
    argv = [os.path.join(recipes.REPO_ROOT, a) if a.startswith("configs/") else a for a in argv]
    for key in PROTOCOL_KEYS:
        node, leaf = key.split(".")
        argv += [key, str(cfg[node][leaf])]
    return _reference_flat(engine, tuple(argv))


@functools.lru_cache(maxsize=None)
def _reference_flat(engine: str, argv: Tuple[str, ...]) -> Dict[str, str]:
    return identity_flat(parse(argv)[1], engine)


def _compared(flat: Mapping[str, str], spec: MethodSpec) -> Dict[str, str]:
    """What is compared with the recipe: not the seed, nor a result variant's key (its folder names it)."""
    named = {v.key for v in spec.variants}
    return {k: v for k, v in flat.items() if k != "SEED" and k not in named}


def identify(cfg, engine: str, eval_of: Optional[Tuple[str, Optional[int]]] = None,
             source_metrics: Optional[dict] = None) -> RunIdentity:
    """The identity of the run ``cfg`` describes under ``engine``; ``eval_of`` = (model dir, epoch) for an
    evaluation, whose identity is the evaluated weights plus how they are evaluated."""
    method = cfg.TRAINER.NAME
    spec = spec_of_run(method)
    try:
        check_track(cfg.DATASET.TRACK)
    except ValueError as err:
        raise UserError(str(err)) from None
    flat = identity_flat(cfg, engine)
    variant = result_variant(cfg, spec)
    if eval_of is not None:
        flat["EVAL.MODEL_DIR"] = repr(os.path.abspath(eval_of[0]) if eval_of[0] else "")
        flat["EVAL.LOAD_EPOCH"] = repr(eval_of[1])
        return RunIdentity(fingerprint(flat), flat, spec, method, variant,
                           recipe=bool(source_metrics and source_metrics.get("recipe")))
    reference = recipe_reference(cfg, engine)
    if reference is None:
        return RunIdentity(fingerprint(flat), flat, spec, method, variant)
    dev = deviation(_compared(flat, spec), _compared(reference, spec))
    recipe = not dev and spec.published_recipe and cfg.MODEL.BACKBONE.NAME in recipes.PAPER_BACKBONES
    return RunIdentity(fingerprint(flat), flat, spec, method, variant, dev, variant_suffix(dev), recipe)


def stored_flat(folder: str, metrics: dict, engine: str) -> Optional[Dict[str, str]]:
    """The identity keys of a finished run, by today's rule, from its ``config.yaml`` and recorded engine (its
    own ``engine``, or ``engine`` when it recorded none). None when the file is missing or its method unknown."""
    path = os.path.join(folder, "config.yaml")
    method = metrics.get("method", "")
    if not os.path.isfile(path) or method not in trainers.declared_methods():
        return None
    cfg = base_config()
    known = set(flatten_config(cfg))
    cfg.set_new_allowed(True)
    cfg.merge_from_file(path)
    with open(path) as f:
        if "TRACK" not in ((yaml.safe_load(f) or {}).get("DATASET") or {}):  # written before the key existed
            cfg.DATASET.TRACK = LEGACY_TRACK
    flat = identity_flat(cfg, metrics.get("engine") or engine)
    return {k: v for k, v in flat.items() if k in known or k == "ENGINE"}
