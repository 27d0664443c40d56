"""Where a run goes, and whether a folder may run it, reuse it, or must refuse it; the folder's lock and FAILED mark.

The folder layout and its suffixes, in order: docs/bookkeeping.md.
"""
import ast
import glob
import json
import logging
import os
import re
from contextlib import contextmanager, suppress
from typing import Iterator, Optional, Tuple

from bookkeeping.identity import RunIdentity, describe_deviation, deviation, identify, stored_flat
from datasets import DEFAULT_TRACK
from engine import ENGINE_NAME
from engine.checkpoint import BEST_MODEL, fingerprint
from engine.fileio import LockBusy, cluster_lock

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
FAILED_FILE = "FAILED"
_LOCK_LIFETIME_S = 600.0   # a lock not refreshed for this long (a dead node) may be broken
_REFRESH_EVERY_S = 60.0
RunLocked = LockBusy  # another process holds the run folder's lock (raised only when not waiting)


def backbone_tag(backbone: str) -> str:
    """Folder-safe backbone name: ``RN50`` -> ``rn50``, ``ViT-B/16`` -> ``vit_b16``, ``/path/my-clip.pt`` -> ``my_clip``."""
    name = backbone
    if os.path.isfile(name) or name.endswith((".pt", ".pth")):
        name = os.path.splitext(os.path.basename(name))[0]
    return re.sub(r"[:@_-]+", "_", name.lower().replace("/", ""))


def protocol_suffix(classes: str, track: str, selects_on_val: bool) -> str:
    """``_base``/``_new`` for a class subset; ``_<track>`` for a selecting method's run off the default track."""
    suffix = f"_{classes}" if classes and classes != "all" else ""
    if track and track != DEFAULT_TRACK and selects_on_val:
        suffix += f"_{track}"
    return suffix


def _suffixed(run_dir: str, suffix: str) -> str:
    """``.../<tag>/seed1`` -> ``.../<tag><suffix>/seed1`` (idempotent)."""
    parent, leaf = os.path.split(os.path.normpath(run_dir))
    if suffix and not parent.endswith(suffix):
        parent += suffix
    return os.path.join(parent, leaf)


def run_folder(cfg, ident: RunIdentity, evaluation: bool = False) -> str:
    """Where ``train.py --reuse`` runs: the launcher's folder named for the variant, the protocol, the deviation.
    An evaluation's folder is given in full (``<run>/eval_<x>``)."""
    folder = cfg.OUTPUT_DIR
    if not evaluation:
        folder = _suffixed(folder, ident.result.folder_suffix if ident.result else "")
        folder = _suffixed(folder, protocol_suffix(str(cfg.DATASET.SUBSAMPLE_CLASSES), str(cfg.DATASET.TRACK),
                                                   ident.spec.selects_on_val))
    return _suffixed(folder, "_" + ident.variant if ident.variant else "")


def selected_models(run: str) -> list:
    """``run``'s ``<model>/model-best.pth.tar`` files: the val-selected model it deployed and reported."""
    return glob.glob(os.path.join(glob.escape(run), "*", BEST_MODEL))


def deployed_epoch(run: str) -> Optional[int]:
    """The ``--load-epoch`` that loads the model ``run`` reported: None for its ``selected_models`` (or when it
    saved none), else the highest ``N`` of its ``<model>/model.pth.tar-N``."""
    if selected_models(run):
        return None
    epochs = [p.rsplit("-", 1)[1] for p in glob.glob(os.path.join(glob.escape(run), "*", "model.pth.tar-*"))]
    return max((int(e) for e in epochs if e.isdecimal()), default=None)


def read_metrics(folder: str) -> Optional[dict]:
    try:
        with open(os.path.join(folder, "metrics.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def resolve_run(args, cfg) -> Tuple[RunIdentity, str]:
    """The identity and folder of a ``train.py`` command line (``parse``'s ``(args, cfg)``): with ``--reuse``
    the ``run_folder``, else ``--output-dir``. An evaluation's identity names the weights it evaluates."""
    source = read_metrics(args.model_dir) if args.eval_only and args.model_dir else None
    ident = identify(cfg, ENGINE_NAME, (args.model_dir, args.load_epoch) if args.eval_only else None, source)
    return ident, run_folder(cfg, ident, args.eval_only) if args.reuse else cfg.OUTPUT_DIR


def folder_state(folder: str, ident: RunIdentity) -> Tuple[str, str]:
    """("run" | "done" | "conflict", why): may this request run in ``folder``, or reuse what is there? A run from
    before schema 2 is compared by its identity recomputed from its ``config.yaml`` (docs/bookkeeping.md)."""
    metrics = read_metrics(folder)
    if metrics is None:
        return "run", ""
    engine = ast.literal_eval(ident.flat["ENGINE"])
    try:
        stored = stored_flat(folder, metrics, engine)
    except Exception as err:  # yacs/yaml: a config.yaml this version cannot read
        return "conflict", (f"{folder} holds a finished run whose config.yaml cannot be read ({err}); move or delete "
                            "that folder, or pick another OUTPUT")
    if stored is not None:
        stored.update({k: v for k, v in ident.flat.items() if k.startswith("EVAL.")})
    theirs = metrics.get("fingerprint") if metrics.get("schema") else (fingerprint(stored) if stored else None)
    if theirs == ident.fingerprint:
        return "done", "finished, same config"
    diff = deviation({k: v for k, v in ident.flat.items() if not k.startswith("EVAL.")},
                     {k: v for k, v in (stored or {}).items() if not k.startswith("EVAL.")})
    if set(diff) == {"DATASET.TRACK"}:
        theirs_track, ours = (ast.literal_eval(v) if v else DEFAULT_TRACK for v in diff["DATASET.TRACK"])
        return "conflict", (f"{folder} holds a {theirs_track}-track run of {metrics.get('method')} (made before that "
                            f"track had its own folder); to keep it, move it to {_suffixed(folder, '_' + theirs_track)}"
                            f"; to replace it, delete it; then run this {ours}-track run again")
    what = f" (differs in: {describe_deviation({k: (b, a) for k, (a, b) in diff.items()}, limit=4)})" if diff else ""
    return "conflict", (f"{folder} holds a finished run with another config{what}; move or delete that folder, "
                        "or pick another OUTPUT, to run this one")


@contextmanager
def run_lock(folder: str, wait: bool = True) -> Iterator[bool]:
    """Hold ``folder/.lock`` for a run (``engine.fileio.cluster_lock``: safe across processes and NFS nodes).
    Yields True when the lock had to be waited for (another launch of the same run was in progress: check again
    whether it has finished)."""
    os.makedirs(folder, exist_ok=True)
    with cluster_lock(os.path.join(folder, LOCK_FILE), lifetime_s=_LOCK_LIFETIME_S, wait=wait,
                      refresh_every_s=_REFRESH_EVERY_S, what=folder) as held:
        yield held.waited


def mark_failed(folder: str, message: str) -> None:
    """Leave ``folder/FAILED`` (the error line): the run is not finished and will run again."""
    try:
        with open(os.path.join(folder, FAILED_FILE), "w") as f:
            f.write(message.strip() + "\n")
    except OSError:
        logger.warning("Cannot write %s in %s", FAILED_FILE, folder)


def clear_failed(folder: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, FAILED_FILE))
