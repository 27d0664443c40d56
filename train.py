"""Train or evaluate one method on one dataset: CoOp's command line, plus ``--enhanced-base`` and ``--cache-dir``.

Config merge order: engine defaults -> method/dataset/cache keys -> dataset YAML -> method YAML ->
command-line flags -> trailing ``KEY VALUE`` overrides. Every run writes ``config.yaml``, ``log.txt``
and ``metrics.json`` in its output directory.
"""
import argparse
import logging
import os
import sys
import time
from typing import List, Optional

logger = logging.getLogger("train")


class UserError(Exception):
    """A mistake in how the program was called; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    p.add_argument("--enhanced-base", type=str, default="", help="TaskRes*: enhanced text projection file")
    p.add_argument("--cache-dir", type=str, default="", help="feature cache folder (FEATURE_CACHE.DIR)")
    p.add_argument("--no-cache", action="store_true", help="run the image encoder on every batch (original behaviour)")
    p.add_argument("--reuse", action="store_true",
                   help="launcher mode: --output-dir names the recipe's run (.../<tag>/seed<S>); a config that differs "
                        "from the recipe runs in .../<tag>_<8 hex>/seed<S>; a finished run with the same identity is "
                        "reused, not rerun; a folder holding another identity stops with one line")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="modify config options (KEY VALUE pairs)")
    return p


def setup_cfg(args):
    import datasets
    import trainers
    from engine import get_cfg_default
    from engine.loop import add_loop_config

    cfg = get_cfg_default()
    add_loop_config(cfg)
    datasets.add_dataset_config(cfg)
    trainers.add_trainer_configs(cfg)
    for label, path in (("dataset config", args.dataset_config_file), ("config", args.config_file)):
        if path:
            if not os.path.isfile(path):
                raise UserError(f"The {label} file {path} does not exist")
            try:
                cfg.merge_from_file(path)
            except Exception as err:
                raise UserError(f"Cannot read the {label} file {path}: {err}") from err
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed >= 0:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head
    if args.enhanced_base:
        cfg.TRAINER.TaskRes.ENHANCED_BASE = args.enhanced_base
    if args.cache_dir:
        cfg.FEATURE_CACHE.DIR = args.cache_dir
    if args.no_cache:
        cfg.FEATURE_CACHE.ENABLED = False
    try:
        cfg.merge_from_list(args.opts or [])
    except Exception as err:
        raise UserError(f"Bad KEY VALUE override {args.opts}: {err}") from err
    cfg.freeze()
    return cfg


def check_cfg(cfg) -> None:
    from engine import DATASET_REGISTRY, TRAINER_REGISTRY

    if not cfg.TRAINER.NAME:
        raise UserError(f"No trainer given (--trainer). Valid: {', '.join(sorted(TRAINER_REGISTRY.registered_names()))}")
    if cfg.TRAINER.NAME not in TRAINER_REGISTRY.registered_names():
        raise UserError(f"Unknown trainer {cfg.TRAINER.NAME!r}. Valid: "
                        f"{', '.join(sorted(TRAINER_REGISTRY.registered_names()))}")
    if cfg.DATASET.NAME not in DATASET_REGISTRY.registered_names():
        raise UserError(f"Unknown dataset {cfg.DATASET.NAME!r} (give --dataset-config-file). Valid: "
                        f"{', '.join(sorted(DATASET_REGISTRY.registered_names()))}")
    if not cfg.DATASET.ROOT or not os.path.isdir(cfg.DATASET.ROOT):
        raise UserError(f"Datasets root {cfg.DATASET.ROOT!r} is not a folder; pass --root (see DATASETS.md)")
    check_protocol(cfg)


def check_protocol(cfg) -> None:
    """The evaluation protocol's keys: a known class subset and selection track, and no val-based choice of
    the deployed epoch (``TEST.FINAL_MODEL best_val``) in the validation-free track."""
    from datasets import check_track

    track, classes = cfg.DATASET.TRACK, str(cfg.DATASET.SUBSAMPLE_CLASSES)
    try:
        check_track(track)
    except ValueError as err:
        raise UserError(str(err)) from None
    if classes not in ("all", "base", "new"):  # exactly CoOp's values: the run folder and identity use them as given
        raise UserError(f"DATASET.SUBSAMPLE_CLASSES must be all, base or new, not {classes!r}")
    if track == "valfree" and cfg.TEST.FINAL_MODEL == "best_val":
        raise UserError("TEST.FINAL_MODEL best_val selects the epoch on val, which the valfree track forbids; "
                        "use TEST.FINAL_MODEL last_step")


def selection_record(cfg, trainer, eval_only: bool, model_dir: str = "") -> dict:
    """What a run's result may be compared with: its class subset, selection track, whether it read validation
    data, the tracks whose rules it satisfies, and (an evaluation) the trained run it evaluates.

    A run counts in the track it was configured for; a run of a method that selects nothing on val
    (``selects_on_val`` false) and read no validation data satisfies both tracks' rules, so one run serves
    both tables. An evaluation inherits the tracks of the run it evaluates.
    """
    import json

    from datasets import satisfied_tracks

    track = cfg.DATASET.TRACK
    read = bool(getattr(trainer, "read_validation", False)) or (not eval_only and cfg.TEST.FINAL_MODEL == "best_val")
    selects = trainer.spec.selects_on_val
    record = {"classes": str(cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")).lower(), "track": track,
              "read_validation": read, "tracks": satisfied_tracks(track, read, selects),
              "class_agnostic": trainer.spec.class_agnostic,
              "selection_data": getattr(trainer, "selection", None)}  # datasets.select_validation's record
    if eval_only and model_dir:
        try:
            with open(os.path.join(model_dir, "metrics.json")) as f:
                source = json.load(f)
        except (OSError, ValueError):
            source = {}
        record["source"] = {k: source.get(k) for k in ("method", "dataset", "shots", "seed", "classes", "track")}
        record["source"]["path"] = os.path.abspath(model_dir)
        record["read_validation"] = bool(source.get("read_validation", read))
        # A source written before tracks were recorded: the paper's track, judged by the same rule.
        record["tracks"] = source.get("tracks") or satisfied_tracks(str(source.get("track") or "fewshot_val"),
                                                                    record["read_validation"], selects)
    return record


def write_metrics(cfg, trainer, wall_s: float, eval_only: bool, identity=None, model_dir: str = "") -> Optional[str]:
    """Write ``metrics.json``: what ran, its result, and its identity (``fingerprint``, ``recipe``, ``modified``).

    Training-free methods (zero-shot, linear probe, Tip-Adapter) record no epochs: the file says what the
    run did, not what the config happened to hold. ``shots`` is ``DATASET.NUM_SHOTS`` as asked (zero-shot
    CLIP reads no training image whatever it is; ``tools.report`` files it under 0 shots).
    """
    import trainers
    from engine import ENGINE_NAME, write_json

    results = getattr(trainer, "last_results", None)
    if not results:
        return None
    training_free = trainer.spec.training_free or trainers.method_spec(cfg.TRAINER.NAME).shot_free
    metrics = {
        "method": cfg.TRAINER.NAME,
        "dataset": cfg.DATASET.NAME,
        "backbone": cfg.MODEL.BACKBONE.NAME,
        "shots": int(cfg.DATASET.NUM_SHOTS),
        "seed": int(cfg.SEED),
        "split": results.get("split", "test"),
        "accuracy": float(results["accuracy"]),
        "macro_f1": float(results["macro_f1"]) if "macro_f1" in results else None,
        "eval_only": eval_only,
        "epochs": None if (training_free or eval_only) else int(getattr(trainer, "max_epoch", cfg.OPTIM.MAX_EPOCH)),
        "feature_cache": bool(cfg.FEATURE_CACHE.ENABLED),
        "engine": ENGINE_NAME,
        # False: the dataset's split was built from raw annotations, not the official CoOp split file;
        # its numbers are not comparable with published ones (DATASETS.md).
        "official_split": bool(getattr(getattr(getattr(trainer, "dm", None), "dataset", None), "official_split", True)),
        **(identity.as_metrics() if identity is not None else {}),
        **selection_record(cfg, trainer, eval_only, model_dir),
        # How training views were made: paper_protocol is False in fast mode (FEATURE_CACHE.NUM_VIEWS k).
        "feature_cache_info": dict(getattr(trainer, "cache_info", {}) or {}),
        "timings": dict(getattr(trainer, "timings", {}), wall_s=wall_s),
        "extra": trainer.metrics_extra() if hasattr(trainer, "metrics_extra") else {},
    }
    path = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
    write_json(metrics, path)
    return path


def _finalize_cfg(cfg, output_dir: str):
    """The run-time parts of the config: its folder and DataLoader workers capped at the CPUs this process has
    (configs say 8; more workers than CPUs only slow the loader and make torch warn). Both are launch-only keys."""
    from engine.fileio import available_cpus

    cfg.defrost()
    cfg.OUTPUT_DIR = output_dir
    cfg.DATALOADER.NUM_WORKERS = max(0, min(int(cfg.DATALOADER.NUM_WORKERS), available_cpus()))
    cfg.freeze()
    return cfg


def _describe(cfg) -> str:
    shots = "zero-shot" if cfg.TRAINER.NAME in ("ZeroshotCLIP", "ZeroshotCLIP2") else f"{cfg.DATASET.NUM_SHOTS}-shot"
    return (f"{cfg.TRAINER.NAME} {cfg.DATASET.NAME} {shots} seed {cfg.SEED}, backbone "
            f"{os.path.basename(cfg.MODEL.BACKBONE.NAME)}")


def _previous_results(folder: str) -> dict:
    import json

    with open(os.path.join(folder, "metrics.json")) as f:
        m = json.load(f)
    return {"accuracy": m["accuracy"], "macro_f1": m.get("macro_f1"), "split": m.get("split", "test"), "reused": True}


def run(args) -> dict:
    """Resolve the run's folder from its identity, hold the folder's lock, then run (or reuse) it."""
    start = time.time()
    cfg = setup_cfg(args)
    from engine import RunInterrupted, setup_logger
    from engine.identity import clear_failed, mark_failed, run_lock
    from scripts.reproduce.runs import eval_of, folder_state, identify, run_folder

    check_cfg(cfg)
    setup_logger(None)  # the console, until the run's folder is known
    identity = identify(cfg, eval_of(args))
    folder = run_folder(cfg, identity, eval_of(args) is not None) if args.reuse else cfg.OUTPUT_DIR
    cfg = _finalize_cfg(cfg, os.path.abspath(folder) if folder else folder)
    with run_lock(cfg.OUTPUT_DIR):
        state, why = folder_state(cfg.OUTPUT_DIR, identity)
        if args.reuse and state == "done":
            logger.info("[skip] %s (%s)", cfg.OUTPUT_DIR, why)
            return dict(_previous_results(cfg.OUTPUT_DIR), output_dir=cfg.OUTPUT_DIR)
        if args.reuse and state == "conflict":
            raise UserError(why)
        clear_failed(cfg.OUTPUT_DIR)
        stale = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
        if os.path.isfile(stale):  # rerunning a finished folder: its old result must not outlive a failure
            os.replace(stale, stale + ".replaced")
        try:
            return dict(_run(cfg, args, identity, start) or {}, output_dir=cfg.OUTPUT_DIR)
        except RunInterrupted:
            raise  # not a failure: resume.pth.tar holds the state and the same command continues
        except BaseException as err:
            mark_failed(cfg.OUTPUT_DIR, f"{type(err).__name__}: {err}")
            raise


def _run(cfg, args, identity, start: float) -> dict:
    from engine import ENGINE_NAME, build_trainer, collect_env_info, set_random_seed, setup_logger
    from engine.identity import describe_deviation

    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    # Under Dassl, its own messages are printed: copy them into log.txt beside ours. Records marked
    # file_only (engine, environment, config) go to log.txt, not the console.
    setup_logger(cfg.OUTPUT_DIR, tee_prints=ENGINE_NAME == "dassl")
    logger.info("[run] %s -> %s", _describe(cfg), cfg.OUTPUT_DIR)
    if identity.deviation:
        logger.info("      modified run (%s): %s", identity.variant, describe_deviation(identity.deviation))
    file_only = {"file_only": True}
    logger.info("Engine: %s", ENGINE_NAME, extra=file_only)
    logger.info("Command: %s", " ".join(sys.argv), extra=file_only)
    logger.info("Environment:\n%s", collect_env_info(), extra=file_only)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    logger.info("Config (also in config.yaml):\n%s", cfg.dump(), extra=file_only)
    trainer = build_trainer(cfg)
    if args.eval_only:
        if trainer.get_model_names():
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
    elif not args.no_train:
        trainer.train()
    path = write_metrics(cfg, trainer, time.time() - start, args.eval_only, identity,
                         args.model_dir if args.eval_only else "")
    results = getattr(trainer, "last_results", {})
    if path:
        logger.info("Result: %.2f%% accuracy; metrics in %s", results["accuracy"], path)
    return results


# Errors whose message is enough for the user: printed as one line, no traceback.
def _user_facing_errors():
    from engine import CheckpointError, CorruptImageError, EngineUnavailableError
    from features import FeatureCacheError
    from trainers.backbone import BackboneError

    errors = [UserError, CheckpointError, CorruptImageError, EngineUnavailableError, BackboneError, FileNotFoundError,
              FeatureCacheError]
    try:
        from datasets.errors import DatasetFileError, DatasetNotFoundError, ValidationSplitError
        errors.extend([DatasetNotFoundError, DatasetFileError, ValidationSplitError])
    except ImportError:
        pass
    return tuple(errors)


def one_line(err: BaseException) -> str:
    """The user's message of ``err``: a DataLoader worker's error arrives wrapped in a message holding the
    worker's whole traceback ("Caught X in DataLoader worker process 0. Original Traceback ..."); its last
    line, without the type name, is the message the worker raised."""
    text = str(err)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    prefix = f"{type(err).__name__}: "
    return last[last.index(prefix) + len(prefix):] if prefix in last else last


def main(argv: Optional[List[str]] = None) -> dict:
    """Entry point callable from tests: ``main(["--root", ..., "--trainer", "TaskRes", ...])``."""
    args = build_parser().parse_args(argv)
    try:
        errors = _user_facing_errors()
    except Exception as err:  # e.g. TASKRES_ENGINE=dassl without Dassl fails at `import engine`
        if type(err).__name__ in ("EngineUnavailableError", "MethodModuleError"):  # one line naming the problem
            raise SystemExit(f"error: {err}") from None
        raise
    from engine import RunInterrupted
    from engine.loop import stop_on_signals

    try:
        with stop_on_signals():
            return run(args)
    except RunInterrupted as err:
        logging.getLogger("train").debug("interrupted", exc_info=True)
        sys.stderr.write(f"interrupted: {err}\n")
        raise SystemExit(130) from None
    except errors as err:
        logging.getLogger("train").debug("user error", exc_info=True)
        raise SystemExit(f"error: {one_line(err)}") from None


if __name__ == "__main__":
    main()
