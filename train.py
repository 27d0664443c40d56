"""Train or evaluate one method on one dataset: CoOp's command line, plus ``--cache-dir`` and each method's
result-variant flags (``--enhanced-base``); the config is built by ``bookkeeping.config``.

Every run writes ``config.yaml``, ``log.txt`` and ``metrics.json`` in its output directory.
"""
import datetime
import logging
import os
import sys
import time
from typing import List, Optional

logger = logging.getLogger("train")


def check_cfg(cfg) -> None:
    """Known trainer and dataset, a datasets root, and the protocol's keys: a known class subset and no val-based
    choice of the deployed epoch (``TEST.FINAL_MODEL best_val``) in the validation-free track (the track itself
    is checked with the run's identity)."""
    from bookkeeping.config import UserError
    from engine import DATASET_REGISTRY, TRAINER_REGISTRY

    valid = ", ".join(sorted(TRAINER_REGISTRY.registered_names()))
    if not cfg.TRAINER.NAME:
        raise UserError(f"No trainer given (--trainer). Valid: {valid}")
    if cfg.TRAINER.NAME not in TRAINER_REGISTRY.registered_names():
        raise UserError(f"Unknown trainer {cfg.TRAINER.NAME!r}. Valid: {valid}")
    if cfg.DATASET.NAME not in DATASET_REGISTRY.registered_names():
        raise UserError(f"Unknown dataset {cfg.DATASET.NAME!r} (give --dataset-config-file). Valid: "
                        f"{', '.join(sorted(DATASET_REGISTRY.registered_names()))}")
    if not cfg.DATASET.ROOT or not os.path.isdir(cfg.DATASET.ROOT):
        raise UserError(f"Datasets root {cfg.DATASET.ROOT!r} is not a folder; pass --root (see DATASETS.md)")
    classes = str(cfg.DATASET.SUBSAMPLE_CLASSES)
    if classes not in ("all", "base", "new"):  # exactly CoOp's values: the run folder and identity use them as given
        raise UserError(f"DATASET.SUBSAMPLE_CLASSES must be all, base or new, not {classes!r}")
    if cfg.DATASET.TRACK == "valfree" and cfg.TEST.FINAL_MODEL == "best_val":
        raise UserError("TEST.FINAL_MODEL best_val selects the epoch on val, which the valfree track forbids; "
                        "use TEST.FINAL_MODEL last_step")


def selection_record(cfg, trainer, spec, eval_only: bool, model_dir: str) -> dict:
    """What a run's result may be compared with: class subset, track, whether it read validation data, the
    tracks whose rules it satisfies (a method that selects nothing on val and read no validation data satisfies
    both: one run serves both tables) and, for an evaluation, the trained run, whose tracks it inherits."""
    from bookkeeping.folders import read_metrics
    from datasets import satisfied_tracks

    track = cfg.DATASET.TRACK
    read = bool(getattr(trainer, "read_validation", False)) or (not eval_only and cfg.TEST.FINAL_MODEL == "best_val")
    selects = spec.selects_on_val
    record = {"classes": str(cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")).lower(), "track": track,
              "read_validation": read, "tracks": satisfied_tracks(track, read, selects),
              "class_agnostic": spec.class_agnostic,
              "selection_data": getattr(trainer, "selection", None)}  # datasets.select_validation's record
    if eval_only and model_dir:
        source = read_metrics(model_dir) or {}
        record["source"] = {k: source.get(k) for k in ("method", "dataset", "shots", "seed", "classes", "track")}
        record["source"]["path"] = os.path.abspath(model_dir)
        record["read_validation"] = bool(source.get("read_validation", read))
        # A source written before tracks were recorded: the paper's track, judged by the same rule.
        record["tracks"] = source.get("tracks") or satisfied_tracks(str(source.get("track") or "fewshot_val"),
                                                                    record["read_validation"], selects)
    return record


def write_metrics(cfg, trainer, timings: dict, eval_only: bool, identity, model_dir: str) -> Optional[str]:
    """Write ``metrics.json``: what ran, its result, its identity (``RunIdentity.as_metrics``), its selection
    record and ``timings``. Training-free methods record no epochs (what the run did, not what the config held);
    ``shots`` is ``DATASET.NUM_SHOTS`` as asked (``tools.report`` files zero-shot CLIP under 0 shots)."""
    import trainers
    from engine import ENGINE_NAME, write_json

    results = getattr(trainer, "last_results", None)
    if not results:
        return None
    spec = trainers.method_spec(cfg.TRAINER.NAME)
    training_free = spec.training_free or spec.shot_free
    metrics = {
        "method": cfg.TRAINER.NAME, "dataset": cfg.DATASET.NAME, "backbone": cfg.MODEL.BACKBONE.NAME,
        "shots": int(cfg.DATASET.NUM_SHOTS), "seed": int(cfg.SEED), "split": results.get("split", "test"),
        "accuracy": float(results["accuracy"]),
        "macro_f1": float(results["macro_f1"]) if "macro_f1" in results else None, "eval_only": eval_only,
        "epochs": None if (training_free or eval_only) else int(getattr(trainer, "max_epoch", cfg.OPTIM.MAX_EPOCH)),
        "feature_cache": bool(cfg.FEATURE_CACHE.ENABLED), "engine": ENGINE_NAME,
        # False: the dataset's split was built from raw annotations, not the official CoOp split file;
        # its numbers are not comparable with published ones (DATASETS.md).
        "official_split": bool(getattr(getattr(getattr(trainer, "dm", None), "dataset", None), "official_split", True)),
        **identity.as_metrics(),
        **selection_record(cfg, trainer, spec, eval_only, model_dir),
        # How training views were made: paper_protocol is False in fast mode (FEATURE_CACHE.NUM_VIEWS k).
        "feature_cache_info": dict(getattr(trainer, "cache_info", {}) or {}),
        "timings": timings, "extra": trainer.metrics_extra() if hasattr(trainer, "metrics_extra") else {},
    }
    path = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
    write_json(metrics, path)
    return path


def run(args) -> dict:
    """Resolve the run's folder from its identity, hold the folder's lock, then run (or reuse) it."""
    from bookkeeping import folders
    from bookkeeping.config import UserError, setup_cfg
    from engine import RunInterrupted, setup_logger
    from engine.fileio import available_cpus

    start = time.time()
    cfg = setup_cfg(args)
    check_cfg(cfg)
    setup_logger(None)  # the console, until the run's folder is known
    if args.eval_only and args.load_epoch is None:  # the model the run reported (its identity names the epoch)
        args.load_epoch = folders.deployed_epoch(args.model_dir)
    identity, folder = folders.resolve_run(args, cfg)
    # Launch-only keys: the run's folder, and DataLoader workers capped at the CPUs this process has (configs
    # say 8; more workers than CPUs only slow the loader and make torch warn).
    cfg.defrost()
    cfg.OUTPUT_DIR = os.path.abspath(folder) if folder else folder
    cfg.DATALOADER.NUM_WORKERS = max(0, min(int(cfg.DATALOADER.NUM_WORKERS), available_cpus()))
    cfg.freeze()
    with folders.run_lock(cfg.OUTPUT_DIR):
        state, why = folders.folder_state(cfg.OUTPUT_DIR, identity)
        if args.reuse and state == "done":
            logger.info("[skip] %s (%s)", cfg.OUTPUT_DIR, why)
            m = folders.read_metrics(cfg.OUTPUT_DIR)
            return {"accuracy": m["accuracy"], "macro_f1": m.get("macro_f1"), "split": m.get("split", "test"),
                    "reused": True, "output_dir": cfg.OUTPUT_DIR}
        if args.reuse and state == "conflict":
            raise UserError(why)
        folders.clear_failed(cfg.OUTPUT_DIR)
        stale = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
        if os.path.isfile(stale):  # rerunning a finished folder: its old result must not outlive a failure
            os.replace(stale, stale + ".replaced")
        try:
            return dict(_run(cfg, args, identity, start) or {}, output_dir=cfg.OUTPUT_DIR)
        except RunInterrupted:
            raise  # not a failure: resume.pth.tar holds the state and the same command continues
        except BaseException as err:
            folders.mark_failed(cfg.OUTPUT_DIR, f"{type(err).__name__}: {err}")
            raise


def phases(timings: dict, wall_s: float, before_train: dict) -> dict:
    """The run's wall time split into disjoint phases, from the trainer's ``timings``: loading the backbone,
    extracting features (any split), training (``train_s`` less the extraction and evaluation inside it),
    evaluation, and the rest (reading data, building the model, writing files)."""
    def evaluation(t: dict) -> float:
        return sum(v for k, v in t.items() if k.startswith("eval_") and k.endswith("_s"))

    out = {"backbone_s": timings.get("load_backbone_s", 0.0), "extraction_s": timings.get("extract_s", 0.0),
           "training_s": max(0.0, timings.get("train_s", 0.0)
                             - (timings.get("extract_s", 0.0) - before_train.get("extract_s", 0.0))
                             - (evaluation(timings) - evaluation(before_train))),
           "evaluation_s": evaluation(timings)}
    out["other_s"] = max(0.0, wall_s - sum(out.values()))
    return {k: round(v, 3) for k, v in out.items()}


def _run(cfg, args, identity, start: float) -> dict:
    from bookkeeping.folders import selected_models
    from bookkeeping.identity import describe_deviation
    from engine import ENGINE_NAME, build_trainer, collect_env_info, set_random_seed, setup_logger
    from engine.checkpoint import BEST_MODEL

    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    # Under Dassl, its own messages are printed: copy them into log.txt beside ours. Records marked
    # file_only (engine, environment, config) go to log.txt, not the console.
    setup_logger(cfg.OUTPUT_DIR, tee_prints=ENGINE_NAME == "dassl")
    shots = "zero-shot" if identity.spec.shot_free else f"{cfg.DATASET.NUM_SHOTS}-shot"
    logger.info("[run] %s %s %s seed %s, backbone %s -> %s", cfg.TRAINER.NAME, cfg.DATASET.NAME, shots, cfg.SEED,
                os.path.basename(cfg.MODEL.BACKBONE.NAME), cfg.OUTPUT_DIR)
    if identity.deviation:
        logger.info("      modified run (%s): %s", identity.variant, describe_deviation(identity.deviation))
    file_only = {"file_only": True}
    logger.info("Engine: %s", ENGINE_NAME, extra=file_only)
    logger.info("Command: %s", " ".join(sys.argv), extra=file_only)
    logger.info("Environment:\n%s", collect_env_info(), extra=file_only)
    with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    logger.info("Config (also in config.yaml):\n%s", cfg.dump(), extra=file_only)
    trainer = build_trainer(cfg)
    before_train = dict(getattr(trainer, "timings", {}))
    if args.eval_only:
        if args.load_epoch is not None and selected_models(args.model_dir):
            logger.warning("%s deployed its val-selected model (%s); --load-epoch %d evaluates epoch %d's checkpoint "
                           "instead: omit --load-epoch to evaluate the reported model", args.model_dir,
                           BEST_MODEL, args.load_epoch, args.load_epoch)
        if trainer.get_model_names():
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
    elif not args.no_train:
        trainer.train()
    wall_s = time.time() - start
    timings = dict(getattr(trainer, "timings", {}), wall_s=wall_s)
    timings["phases"] = phases(timings, wall_s, before_train)
    path = write_metrics(cfg, trainer, timings, args.eval_only, identity, args.model_dir if args.eval_only else "")
    results = getattr(trainer, "last_results", {})
    if path:
        logger.info("Result: %.2f%% accuracy; metrics in %s", results["accuracy"], path)
    logger.info("Wall time %s (%.1fs): %s", datetime.timedelta(seconds=round(wall_s)), wall_s,
                ", ".join(f"{k.removesuffix('_s')} {v:.1f}s" for k, v in timings["phases"].items()))
    return results


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
    try:
        from bookkeeping.config import UserError, build_parser, in_user_terms
        from datasets.errors import DatasetFileError, DatasetNotFoundError, ValidationSplitError
        from engine import CheckpointError, CorruptImageError, EngineUnavailableError, RunInterrupted
        from engine.loop import stop_on_signals
        from features import FeatureCacheError
        from trainers.backbone import BackboneError
    except Exception as err:  # e.g. TASKRES_ENGINE=dassl without Dassl fails at `import engine`
        if type(err).__name__ in ("EngineUnavailableError", "MethodModuleError"):  # one line naming the problem
            raise SystemExit(f"error: {err}") from None
        raise
    # Errors whose message is enough for the user: printed as one line, no traceback.
    errors = (UserError, CheckpointError, CorruptImageError, EngineUnavailableError, BackboneError, FileNotFoundError,
              FeatureCacheError, DatasetNotFoundError, DatasetFileError, ValidationSplitError)
    args = build_parser().parse_args(argv)
    try:
        with stop_on_signals():
            return run(args)
    except RunInterrupted as err:
        logging.getLogger("train").debug("interrupted", exc_info=True)
        sys.stderr.write(f"interrupted: {err}\n")
        raise SystemExit(130) from None
    except errors as err:
        logging.getLogger("train").debug("user error", exc_info=True)
        raise SystemExit(f"error: {in_user_terms(one_line(err))}") from None


if __name__ == "__main__":
    main()
