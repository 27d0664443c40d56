"""Planning a grid: the cells (one ``train.py --reuse`` run each), their arguments and their resolved folders.

A cell's arguments come from the method's recipe (``recipe_argv``, as the launchers), so the grid and
``scripts/<method>/main.sh`` write the same folders and skip each other's finished runs. Method facts
(shot-free, class-agnostic, selects on val, recipe) are read from ``trainers.method_spec`` only.
"""
import dataclasses
import os
import shlex
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import datasets
import trainers

# The run bookkeeping (identity, folders, recipe arguments): imported here only, so it is repointed in one place.
from bookkeeping.config import UserError, parse
from bookkeeping.folders import backbone_tag, deployed_epoch, folder_state, read_metrics, resolve_run
from bookkeeping.recipes import PAPER_METHODS, REPO_ROOT, RecipeError, get_recipe, recipe_argv  # noqa: F401  (PAPER_METHODS: the CLI)

SOURCE_DATASET = "imagenet"  # cross-dataset and domain generalisation train here
TRACKS, DEFAULT_TRACK = datasets.TRACKS, datasets.DEFAULT_TRACK


class GridError(Exception):
    """A grid that cannot be planned (bad dataset or method name, missing config file, conflicting folder)."""


PLANNING_ERRORS = (GridError, RecipeError, trainers.UnknownMethodError)  # what a bad request raises


@dataclass(frozen=True)
class GridRequest:
    """What the user asked for: the runs (methods x datasets x shots x seeds) and what they share. ``size``,
    ``epochs`` and ``extra`` override the recipe (modified runs, own folders). Paths are made absolute
    (``data`` stays ``$DATA`` when not given: a dry run prints it as such).
    """

    methods: Tuple[str, ...]
    datasets: Tuple[str, ...]
    shots: Tuple[int, ...]
    seeds: Tuple[int, ...]
    backbone: str = "RN50"
    data: str = "$DATA"
    output: str = "output"
    cache_dir: str = ""
    size: Optional[int] = None
    epochs: Optional[int] = None
    extra: Tuple[str, ...] = ()
    track: Optional[str] = None
    variants: Tuple[str, ...] = ()

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise once, here
        for name in ("methods", "datasets", "shots", "seeds", "extra", "variants"):
            set_(self, name, tuple(getattr(self, name)))
        set_(self, "output", os.path.abspath(self.output))
        set_(self, "data", os.path.abspath(self.data) if self.data and self.data != "$DATA" else "$DATA")
        set_(self, "cache_dir", os.path.abspath(self.cache_dir or os.path.join(self.output, "feature_cache")))
        if self.track is not None and self.track not in TRACKS:
            raise GridError(f"Unknown track {self.track!r}; valid: {', '.join(TRACKS)}")


@dataclass(frozen=True)
class Cell:
    """One ``train.py`` run of the grid."""

    method: str
    dataset: str            # config name (caltech101); the evaluated dataset for an eval cell
    shots: int
    seed: int
    backbone: str
    out_dir: str
    argv: Tuple[str, ...]   # train.py arguments
    source_dir: str = ""    # eval cells: the trained run they evaluate
    fingerprint: str = ""   # the run's identity (metrics.json "fingerprint"); "" when not resolved
    note: str = ""          # how the run differs from the recipe, if it does
    source_dataset: str = SOURCE_DATASET  # eval cells: the dataset the evaluated run trained on
    classes: str = "all"    # DATASET.SUBSAMPLE_CLASSES of the run (base-to-novel: base, or new for an eval)

    @property
    def name(self) -> str:
        shots = f"{self.shots}-shot" if self.shots else "zero-shot"
        subset = "" if self.classes == "all" else f" ({self.classes} classes)"
        base = f"{self.method} {self.source_dataset if self.source_dir else self.dataset} {shots} seed {self.seed}"
        return (f"{base} -> {self.dataset}{subset}" if self.source_dir else base + subset)

    @property
    def finished(self) -> bool:
        """``metrics.json`` records this cell's identity (an older run's was checked when the cell was planned)."""
        metrics = read_metrics(self.out_dir)
        return bool(metrics) and (not self.fingerprint or metrics.get("fingerprint", self.fingerprint) == self.fingerprint)

    def command(self, python: str = "python") -> str:
        return f"{python} train.py " + " ".join('"$DATA"' if a == "$DATA" else shlex.quote(a) for a in self.argv)


@dataclass
class ProtocolPlan:
    """A protocol's training cells, the evaluations of them (planned once they have finished), and notes."""

    train: List[Cell]
    evals: Optional[Callable[..., Tuple[List[Cell], List[str]]]] = None  # (pending=False) -> (cells, missing)
    notes: List[str] = field(default_factory=list)


def spec(method: str):
    try:
        return trainers.method_spec(method)
    except trainers.UnknownMethodError as err:
        raise GridError(str(err)) from None


def transfers_to_other_classes(method: str) -> bool:
    """Whether a trained model can be evaluated on classes it was not trained on: nothing is trained (shot-free)
    or the trained state names no class (class-agnostic: prompts, LoRA), unlike per-class state (a residual, a
    linear probe, a key cache)."""
    s = spec(method)
    return s.shot_free or s.class_agnostic


def check_recipes(methods: Sequence[str]) -> None:
    """Every method has a recipe whose config file exists (one line per method that has not)."""
    errors = []
    for m in methods:
        s = spec(m)
        if s.recipe_config is None:
            errors.append(f"{m}: declares no recipe (recipe_config and recipe() in its SPEC); the grid runs recipes")
        elif s.recipe_config and not os.path.isfile(os.path.join(REPO_ROOT, s.recipe_config)):
            errors.append(f"{m}: config file {s.recipe_config} does not exist (method not available yet?)")
    if errors:
        raise GridError("\n".join(errors))


def check_datasets(names: Sequence[str]) -> None:
    folder = os.path.join(REPO_ROOT, "configs", "datasets")
    unknown = [d for d in names if not os.path.isfile(os.path.join(folder, f"{d}.yaml"))]
    if unknown:
        valid = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))
        raise GridError(f"Unknown dataset(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def _launch_args(req: GridRequest, seed: int, out_dir: str) -> List[str]:
    return ["--root", req.data, "--seed", str(seed), "--output-dir", out_dir, "--cache-dir", req.cache_dir, "--reuse"]


def protocol_opts(method: str, track: Optional[str] = None, classes: str = "all") -> List[str]:
    """The ``KEY VALUE`` pairs of a protocol: the class subset, and the track for a method that selects on val
    (a method that reads no validation data runs the same run in both tracks, so it gets no key)."""
    opts = ["DATASET.SUBSAMPLE_CLASSES", classes] if classes != "all" else []
    if track and track != DEFAULT_TRACK and spec(method).selects_on_val:
        opts += ["DATASET.TRACK", track]
    return opts


def plan_runs(req: GridRequest, classes: str = "all") -> List[Cell]:
    """Every training cell of ``req`` (methods x datasets x shots x seeds), with arguments and resolved folder."""
    check_datasets(req.datasets)
    check_recipes(req.methods)
    cells = []
    for m in req.methods:
        recipe = get_recipe(m)
        for d in req.datasets:
            # (shots recorded for the cell, DATASET.NUM_SHOTS, seed): a shot-free method runs once, with the first
            # seed and 1-shot data reading (its result depends on neither), recorded with 0 shots.
            shot_free = spec(m).shot_free
            runs = [(0, 1, req.seeds[0])] if shot_free else [(k, k, s) for k in req.shots for s in req.seeds]
            for k, num_shots, s in runs:
                # the launchers' layout: OUTPUT/<dataset>/<Trainer>/<backbone tag>_<K>shots|zeroshot/seed<S>
                out_dir = os.path.join(req.output, d, m, recipe.tag(backbone_tag(req.backbone), k), f"seed{s}")
                argv = _launch_args(req, s, out_dir) + recipe_argv(m, d, num_shots, req.backbone)
                if req.epochs is not None and spec(m).settings(d, num_shots).get("OPTIM.MAX_EPOCH") is not None:
                    argv += ["OPTIM.MAX_EPOCH", str(req.epochs)]
                argv += ["INPUT.SIZE", f"({req.size}, {req.size})"] if req.size is not None else []
                argv += protocol_opts(m, req.track, classes) + list(req.extra)
                cells.append(Cell(m, d, k, s, req.backbone, out_dir, tuple(argv), classes=classes))
    return resolve_all(cells)


def plan_evals(req: GridRequest, trained: Sequence[Cell], targets: Callable[[Cell], Sequence[Tuple[str, str, str]]],
               pending: bool = False) -> Tuple[List[Cell], List[str]]:
    """Eval cells of the finished ``trained`` runs on each of their ``targets(run)`` ``(dataset, folder name,
    classes)`` (into ``<run>/<folder name>/``), and the unfinished trained runs; ``pending``: also plan those
    runs' evaluations (without ``--load-epoch``), for a dry run's cost.
    """
    cells, missing = [], []
    for t in trained:
        aims = targets(t)
        if not aims:
            continue
        num_shots = 1 if spec(t.method).shot_free else t.shots
        if not t.finished:
            missing.append(t.out_dir)
            if not pending:
                continue
        load_epoch = deployed_epoch(t.out_dir) if t.finished else None
        for target, folder, classes in aims:
            out_dir = os.path.join(t.out_dir, folder)
            argv = _launch_args(req, t.seed, out_dir) + ["--eval-only", "--model-dir", t.out_dir]
            argv += ["--load-epoch", str(load_epoch)] if load_epoch is not None else []
            # As scripts/taskres/eval.sh (test batch 1000, the paper's variant configs), plus one view of
            # the few-shot train images, which an evaluation encodes but never uses.
            argv += [*recipe_argv(t.method, target, num_shots, t.backbone), "DATALOADER.TEST.BATCH_SIZE", "1000"]
            argv += ["INPUT.SIZE", f"({req.size}, {req.size})"] if req.size is not None else []
            argv += ["FEATURE_CACHE.NUM_VIEWS", "1", *protocol_opts(t.method, req.track, classes), *req.extra]
            cells.append(Cell(t.method, target, t.shots, t.seed, t.backbone, out_dir, tuple(argv), source_dir=t.out_dir,
                              source_dataset=t.dataset, classes=classes))
    return resolve_all(cells), missing


def resolve_all(cells: Sequence[Cell]) -> List[Cell]:
    """The cells with their folder and identity as ``train.py --reuse`` will resolve them (the bookkeeping's rule);
    a ``GridError`` lists every cell that cannot be resolved or whose folder holds a run with another config."""
    resolved, errors = [], []
    for c in cells:
        try:
            ident, folder = resolve_run(*parse([os.path.join(REPO_ROOT, a) if a.startswith("configs/") else a
                                                for a in c.argv]))
        except UserError as err:
            errors.append(f"{c.name}: {err}")
            continue
        state, why = folder_state(folder, ident)
        if state == "conflict":
            errors.append(why)
        note = f"modified ({ident.variant})" if ident.deviation else ""
        resolved.append(dataclasses.replace(c, out_dir=folder, fingerprint=ident.fingerprint, note=note))
    if errors:
        raise GridError("\n".join(errors))
    return resolved
