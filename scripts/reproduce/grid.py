"""Run the paper's grid (methods × datasets × shots × seeds), resumably and in parallel.

    python -m scripts.reproduce.grid --data DATA --output output            # the paper's RN50 grid
    python -m scripts.reproduce.grid --methods TaskRes --datasets caltech101 --shots 1 16 --dry-run
    python -m scripts.reproduce.grid --data DATA --output output --executor slurm --slurm-partition gpu
    python -m scripts.reproduce.grid --data DATA --output output --eval-variants   # ImageNet -> V2/Sketch/A/R
    python -m scripts.reproduce.grid ... -- OPTIM.MAX_EPOCH 2                     # KEY VALUE pairs, applied last

Each cell is one ``train.py --reuse`` run whose arguments come from ``recipes.py`` (through
``runs.recipe_argv``, as the launchers), written to the same folder the shell launchers use,
``OUTPUT/<dataset>/<Trainer>/<backbone>_<K>shots/seed<S>/`` for the recipe, ``..._<K>shots_<8 hex>/``
when ``--epochs``, ``--input-size`` or ``--`` overrides change the config (see ``runs.py``), with the same
shared feature cache (``OUTPUT/feature_cache``), so the driver and ``scripts/<method>/main.sh`` skip each
other's finished runs. A cell is finished when its folder's ``metrics.json`` carries the cell's identity;
any other cell (never run, failed, interrupted) runs again; a folder holding a finished run of another
config stops the planning with one line per such folder. A failed cell does not stop the others;
failures are listed at the end with their log files, and the exit status is 1.

Executors: ``pool`` (default) runs ``train.py`` subprocesses locally, one worker per visible GPU
(each worker pinned with ``CUDA_VISIBLE_DEVICES``) or ``--workers N`` on CPU; ``slurm`` submits a
job array through submitit; submitit's ``local`` and ``debug`` executors run the same jobs on this
machine (``debug`` in this process, one after the other, for stepping through in a debugger).

``--eval-variants`` evaluates finished ImageNet runs on ImageNet-V2/-Sketch/-A/-R
(``train.py --eval-only --model-dir <run> --load-epoch <last>``), into ``<run>/eval_<variant>/``.

Protocols (``--protocol``; each trains first, then evaluates the finished runs in the same call):

- ``fewshot`` (default): the paper's grid above;
- ``base2novel`` (CoCoOp): 16 shots of the base half of each dataset's classes
  (``DATASET.SUBSAMPLE_CLASSES base``, folder ``<tag>_base``), evaluated on the base test classes by the run
  itself and on the new ones by ``--eval-only`` into ``<run>/eval_new/``, for methods whose trained state
  transfers to unseen classes (shot-free ones, and ``CLASS_AGNOSTIC`` trainers); a method with per-class
  state is trained and tested on base only, and the grid says so;
- ``cross_dataset``: 16-shot ImageNet, evaluated on the other datasets into ``<run>/eval_<dataset>/``
  (transferring methods only; the others are skipped with the reason);
- ``dg``: 16-shot ImageNet, evaluated on ImageNet-V2/-Sketch/-A/-R (``--eval-variants`` after training).

Selection tracks (``--track``; default ``paper``, each original's own selection data; ``fewshot_val``: min(K, 4)
val images per class for every method, in ``<tag>_fewshot_val`` folders): ``valfree`` passes
``DATASET.TRACK valfree`` to the methods that select on val (``SELECTS_ON_VAL``: Tip-Adapter(-F), the linear
probe), which then use one fixed setting and run in ``<tag>_valfree`` folders; a method that reads no
validation data runs once, and its run counts in both tracks (``metrics.json`` ``tracks``).
"""
import argparse
import functools
import logging
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from scripts.reproduce.recipes import PAPER_METHODS, REPO_ROOT, RecipeError, get_recipe
from scripts.reproduce.runs import (  # noqa: F401  (input_size: the grid's public name)
    DEFAULT_TRACK,
    input_size,
    recipe_argv,
    transfers_to_other_classes,
)

if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tools.names import (  # noqa: E402
    FEWSHOT_DATASETS,
    PAPER_SEEDS,
    PAPER_SHOTS,
    VARIANT_DATASETS,
    backbone_tag,
    selects_on_val,
)

logger = logging.getLogger("scripts.reproduce.grid")

PAPER_DATASETS = tuple(c for c, _, _ in FEWSHOT_DATASETS)
VARIANTS = tuple(c for c, _, _ in VARIANT_DATASETS)
OUTPUT_FILE = "grid.out"  # a cell's captured stdout/stderr (or traceback), next to train.py's log.txt
EXECUTORS = ("pool", "local", "slurm", "debug")
PROTOCOLS = ("fewshot", "base2novel", "cross_dataset", "dg")
TRACKS = ("paper", "fewshot_val", "valfree")  # datasets.TRACKS (a test checks)
SOURCE_DATASET = "imagenet"  # cross-dataset and domain generalisation train here


class GridError(Exception):
    """A grid that cannot be planned (bad dataset name, missing config file, no data root)."""


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
        """``metrics.json`` is there and records this cell's identity (a run from before identities were
        recorded was checked against its ``config.yaml`` when the cell was planned)."""
        import json

        try:
            with open(os.path.join(self.out_dir, "metrics.json")) as f:
                recorded = json.load(f).get("fingerprint", self.fingerprint)
        except (OSError, ValueError):
            return False
        return not self.fingerprint or recorded == self.fingerprint

    def command(self, python: str = "python") -> str:
        return f"{python} train.py " + " ".join('"$DATA"' if a == "$DATA" else shlex.quote(a) for a in self.argv)


@dataclass
class CellResult:
    cell: Cell
    ok: bool
    seconds: float = 0.0
    accuracy: Optional[float] = None
    error: str = ""

    @property
    def logs(self) -> List[str]:
        paths = [os.path.join(self.cell.out_dir, f) for f in ("log.txt", OUTPUT_FILE)]
        return [p for p in paths if os.path.isfile(p)]


@dataclass
class GridReport:
    planned: List[Cell] = field(default_factory=list)
    skipped: List[Cell] = field(default_factory=list)     # finished before this call
    ran: List[CellResult] = field(default_factory=list)   # run by this call (ok or failed)
    blocked: List[str] = field(default_factory=list)      # eval cells whose trained run is missing
    notes: List[str] = field(default_factory=list)        # methods a protocol skips (in part), and why

    @property
    def failed(self) -> List[CellResult]:
        return [r for r in self.ran if not r.ok]


# ---- planning -----------------------------------------------------------------------------------
def _check_datasets(names: Sequence[str]) -> None:
    folder = os.path.join(REPO_ROOT, "configs", "datasets")
    unknown = [d for d in names if not os.path.isfile(os.path.join(folder, f"{d}.yaml"))]
    if unknown:
        valid = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))
        raise GridError(f"Unknown dataset(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def _launch_args(seed: int, data: str, out_dir: str, cache_dir: str) -> List[str]:
    return ["--root", data, "--seed", str(seed), "--output-dir", out_dir, "--cache-dir", cache_dir, "--reuse"]


def resolve_cell(cell: Cell) -> Cell:
    """The cell with its folder and identity as ``train.py --reuse`` will resolve them (runs.py's rule).

    Raises ``GridError`` when the folder holds a finished run with another config.
    """
    import dataclasses

    import train
    from scripts.reproduce.runs import eval_of, folder_state, identify, run_folder

    argv = [os.path.join(REPO_ROOT, a) if a.startswith("configs/") else a for a in cell.argv]
    try:
        args = train.build_parser().parse_args(argv)
        cfg = train.setup_cfg(args)
    except train.UserError as err:
        raise GridError(f"{cell.name}: {err}") from None
    ident = identify(cfg, eval_of(args))
    folder = run_folder(cfg, ident, eval_of(args) is not None)
    state, why = folder_state(folder, ident)
    if state == "conflict":
        raise GridError(why)
    note = f"modified ({ident.variant})" if ident.deviation else ""
    return dataclasses.replace(cell, out_dir=folder, fingerprint=ident.fingerprint, note=note)


def _resolve_all(cells: List[Cell]) -> List[Cell]:
    resolved, errors = [], []
    for c in cells:
        try:
            resolved.append(resolve_cell(c))
        except GridError as err:
            errors.append(str(err))
    if errors:
        raise GridError("\n".join(errors))
    return resolved


def run_dir(output: str, method: str, dataset: str, backbone: str, shots: int, seed: int) -> str:
    """The launchers' layout: ``OUTPUT/<dataset>/<Trainer>/<backbone tag>_<K>shots/seed<S>``
    (``<backbone tag>_zeroshot`` for shot-free methods)."""
    recipe = get_recipe(method)
    return os.path.join(output, dataset, recipe.trainer, recipe.tag(backbone_tag(backbone), shots), f"seed{seed}")


def _cells_of(method: str, shots: Sequence[int], seeds: Sequence[int]) -> List[Tuple[int, int, int]]:
    """(shots recorded for the cell, DATASET.NUM_SHOTS, seed) for each run of one method on one dataset.

    A shot-free method runs once, with the first seed and 1-shot data reading (its result depends on neither);
    its cell is recorded with 0 shots.
    """
    if get_recipe(method).shot_free:
        return [(0, 1, seeds[0])]
    return [(k, k, s) for k in shots for s in seeds]


def protocol_opts(method: str, track: Optional[str] = None, classes: str = "all") -> List[str]:
    """The ``KEY VALUE`` pairs of a protocol: the class subset, and the track for a method that selects on val
    (a method that reads no validation data runs the same run in both tracks, so it gets no key)."""
    opts = ["DATASET.SUBSAMPLE_CLASSES", classes] if classes != "all" else []
    if track and track != DEFAULT_TRACK and selects_on_val(method):
        opts += ["DATASET.TRACK", track]
    return opts


def plan_grid(methods: Sequence[str], datasets: Sequence[str], shots: Sequence[int], seeds: Sequence[int],
              backbone: str, data: str, output: str, cache_dir: str = "", size: Optional[int] = None,
              epochs: Optional[int] = None, extra: Sequence[str] = (), track: Optional[str] = None,
              classes: str = "all") -> List[Cell]:
    """Every cell of methods × datasets × shots × seeds, with its ``train.py`` arguments and resolved folder.

    ``size`` and ``epochs`` (given) override the recipe, after it, so they make modified runs; ``track`` and
    ``classes`` select the protocol (the recipe of that protocol, in its own folder: see ``runs.protocol_dir``).
    """
    _check_datasets(datasets)
    output = os.path.abspath(output)
    data = os.path.abspath(data) if data else "$DATA"
    cache_dir = os.path.abspath(cache_dir or os.path.join(output, "feature_cache"))
    errors = []
    for m in methods:
        try:
            get_recipe(m).config_path()
        except RecipeError as err:
            errors.append(str(err))
    if errors:
        raise GridError("\n".join(errors))
    cells = []
    for m in methods:
        recipe = get_recipe(m)
        for d in datasets:
            for k, num_shots, s in _cells_of(m, shots, seeds):
                out_dir = run_dir(output, m, d, backbone, k, s)
                argv = _launch_args(s, data, out_dir, cache_dir) + recipe_argv(m, d, num_shots, backbone)
                if epochs is not None and recipe.epochs(d, num_shots) is not None:
                    argv += ["OPTIM.MAX_EPOCH", str(epochs)]
                if size is not None:
                    argv += ["INPUT.SIZE", f"({size}, {size})"]
                argv += protocol_opts(m, track, classes)
                cells.append(Cell(m, d, k, s, backbone, out_dir, tuple(argv + list(extra)), classes=classes))
    return _resolve_all(cells)


def last_checkpoint_epoch(run: str) -> Optional[int]:
    """The highest ``N`` of ``<run>/<model>/model.pth.tar-N``, None when the run saved no model."""
    epochs = []
    for entry in os.listdir(run):
        sub = os.path.join(run, entry)
        if os.path.isdir(sub):
            epochs += [int(m.group(1)) for f in os.listdir(sub) if (m := re.fullmatch(r"model\.pth\.tar-(\d+)", f))]
    return max(epochs) if epochs else None


def plan_evals(trained: Sequence[Cell], targets: Sequence[Tuple[str, str, str]], data: str, output: str,
               cache_dir: str = "", size: Optional[int] = None, extra: Sequence[str] = (),
               track: Optional[str] = None, pending: bool = False) -> Tuple[List[Cell], List[str]]:
    """Eval cells of the finished ``trained`` runs on each target ``(dataset, folder name, classes)``
    (``<run>/<folder name>/``), and the trained runs that are not finished yet (nothing to evaluate).

    ``pending``: also plan the evaluations of unfinished runs (without ``--load-epoch``), for a dry run's cost.
    """
    output = os.path.abspath(output)
    data = os.path.abspath(data) if data else "$DATA"
    cache_dir = os.path.abspath(cache_dir or os.path.join(output, "feature_cache"))
    cells, missing = [], []
    for t in trained:
        m, k, s, source = t.method, t.shots, t.seed, t.out_dir
        num_shots = 1 if get_recipe(m).shot_free else k
        if not t.finished:
            missing.append(source)
            if not pending:
                continue
        load_epoch = last_checkpoint_epoch(source) if t.finished else None
        for target, folder, classes in targets:
            out_dir = os.path.join(source, folder)
            argv = _launch_args(s, data, out_dir, cache_dir) + ["--eval-only", "--model-dir", source]
            if load_epoch is not None:
                argv += ["--load-epoch", str(load_epoch)]
            # As scripts/taskres/eval.sh (test batch 1000, the paper's variant configs), plus one view of
            # the few-shot train images, which an evaluation encodes but never uses.
            argv += recipe_argv(m, target, num_shots, t.backbone)
            argv += ["DATALOADER.TEST.BATCH_SIZE", "1000"]
            if size is not None:
                argv += ["INPUT.SIZE", f"({size}, {size})"]
            argv += ["FEATURE_CACHE.NUM_VIEWS", "1", *protocol_opts(m, track, classes), *extra]
            cells.append(Cell(m, target, k, s, t.backbone, out_dir, tuple(argv), source_dir=source,
                              source_dataset=t.dataset, classes=classes))
    return _resolve_all(cells), missing


def plan_variants(methods: Sequence[str], shots: Sequence[int], seeds: Sequence[int], backbone: str, data: str,
                  output: str, variants: Sequence[str] = VARIANTS, cache_dir: str = "", size: Optional[int] = None,
                  extra: Sequence[str] = (), epochs: Optional[int] = None,
                  track: Optional[str] = None, pending: bool = False) -> Tuple[List[Cell], List[str]]:
    """Eval cells for finished ImageNet runs on each variant; also the ImageNet runs that are missing."""
    _check_datasets(variants)
    trained = plan_grid(methods, [SOURCE_DATASET], shots, seeds, backbone, data, output, cache_dir, size, epochs,
                        extra, track)
    return plan_evals(trained, [(v, f"eval_{v}", "all") for v in variants], data, output, cache_dir, size, extra,
                      track, pending)


@dataclass
class ProtocolPlan:
    """A protocol's training cells, the evaluations of them (planned once they have finished), and notes."""

    train: List[Cell]
    evals: Optional[Callable[..., Tuple[List[Cell], List[str]]]] = None  # (pending=False) -> (cells, missing)
    notes: List[str] = field(default_factory=list)


def plan_protocol(protocol: str, methods: Sequence[str], datasets: Sequence[str], shots: Sequence[int],
                  seeds: Sequence[int], backbone: str, data: str, output: str, cache_dir: str = "",
                  size: Optional[int] = None, epochs: Optional[int] = None, extra: Sequence[str] = (),
                  track: Optional[str] = None, variants: Sequence[str] = VARIANTS) -> ProtocolPlan:
    """The cells of one protocol (see the module docstring) under one selection track."""
    if protocol not in PROTOCOLS:
        raise GridError(f"Unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if track is not None and track not in TRACKS:
        raise GridError(f"Unknown track {track!r}; valid: {', '.join(TRACKS)}")
    common = dict(backbone=backbone, data=data, output=output, cache_dir=cache_dir, size=size, epochs=epochs,
                  extra=extra, track=track)
    evaluate = dict(data=data, output=output, cache_dir=cache_dir, size=size, extra=extra, track=track)
    if protocol == "fewshot":
        return ProtocolPlan(plan_grid(methods, datasets, shots, seeds, **common))
    moving = [m for m in methods if transfers_to_other_classes(m)]
    fixed = [m for m in methods if m not in moving]
    if protocol == "base2novel":
        train = plan_grid(methods, datasets, shots, seeds, classes="base", **common)
        notes = [f"{m}: its trained state is per class, so it is trained and tested on the base classes only; the "
                 "report shows its new-class accuracy and HM as n/a" for m in fixed]
        return ProtocolPlan(train, lambda pending=False: _new_class_evals(train, moving, dict(evaluate, pending=pending)),
                            notes)
    targets = ([(d, f"eval_{d}", "all") for d in datasets if d != SOURCE_DATASET] if protocol == "cross_dataset"
               else [(v, f"eval_{v}", "all") for v in variants])
    _check_datasets([t for t, _, _ in targets])
    if protocol == "cross_dataset":
        notes = [f"{m}: skipped, its trained state is per class and cannot classify another dataset's classes"
                 for m in fixed]
        train = plan_grid(moving, [SOURCE_DATASET], shots, seeds, **common) if moving else []
    else:
        notes, train = [], plan_grid(methods, [SOURCE_DATASET], shots, seeds, **common)
    return ProtocolPlan(train, lambda pending=False: plan_evals(train, targets, pending=pending, **evaluate), notes)


def _new_class_evals(train: Sequence[Cell], moving: Sequence[str], evaluate: dict) -> Tuple[List[Cell], List[str]]:
    """Base-to-novel: each transferring run evaluated on its own dataset's new classes."""
    cells, missing = [], []
    for t in train:
        if t.method in moving:
            c, m = plan_evals([t], [(t.dataset, "eval_new", "new")], **evaluate)
            cells += c
            missing += m
    return cells, missing


# ---- running one cell ---------------------------------------------------------------------------
def _read_accuracy(cell: Cell) -> Optional[float]:
    import json

    try:
        with open(os.path.join(cell.out_dir, "metrics.json")) as f:
            return float(json.load(f)["accuracy"])
    except (OSError, ValueError, KeyError):
        return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _run_subprocess(cell: Cell, gpu: Optional[str], python: str) -> Tuple[bool, str]:
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    out_path = os.path.join(cell.out_dir, OUTPUT_FILE)
    with open(out_path, "w") as out:
        proc = subprocess.run([python, "train.py", *cell.argv], cwd=REPO_ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    if proc.returncode == 0:
        return True, ""
    with open(out_path, errors="replace") as f:
        return False, f"exit {proc.returncode}: {_last_line(f.read())}"


def _run_in_process(cell: Cell) -> Tuple[bool, str]:
    """``train.main(argv)`` in this process; logging handlers and the working directory are restored."""
    import train

    root = logging.getLogger()
    handlers, level, cwd = list(root.handlers), root.level, os.getcwd()
    # train.py adds its own console handler: mute the driver's for the run, so no line shows twice.
    consoles = [h for h in handlers if type(h) is logging.StreamHandler]
    for h in consoles:
        root.removeHandler(h)
    os.chdir(REPO_ROOT)
    try:
        train.main(list(cell.argv))
        return True, ""
    except SystemExit as err:
        message = str(err.code) if err.code not in (None, 0) else ""
        if not message:
            return True, ""
        _write_output(cell, message + "\n")
        return False, message
    except Exception as err:  # a crash in one cell must not stop the grid
        _write_output(cell, traceback.format_exc())
        return False, f"{type(err).__name__}: {err}"
    finally:
        os.chdir(cwd)
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        for h in consoles:
            root.addHandler(h)
        root.setLevel(level)


def _write_output(cell: Cell, text: str) -> None:
    with open(os.path.join(cell.out_dir, OUTPUT_FILE), "w") as f:
        f.write(text)


def run_cell(cell: Cell, in_process: bool = False, gpu: Optional[str] = None,
             python: str = sys.executable) -> CellResult:
    """Run one cell and report; never raises for a failed run (it is recorded instead)."""
    start = time.time()
    os.makedirs(cell.out_dir, exist_ok=True)
    try:
        ok, error = _run_in_process(cell) if in_process else _run_subprocess(cell, gpu, python)
    except Exception as err:  # e.g. the interpreter cannot be started
        ok, error = False, f"{type(err).__name__}: {err}"
    if ok and not cell.finished:
        ok, error = False, "train.py ended without writing metrics.json"
    return CellResult(cell, ok, time.time() - start, _read_accuracy(cell) if ok else None, error)


# ---- executors ----------------------------------------------------------------------------------
def visible_gpus() -> List[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else what ``nvidia-smi`` lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


class _Progress:
    def __init__(self, total: int):
        self.total, self.done, self.lock = total, 0, threading.Lock()

    def __call__(self, result: CellResult) -> None:
        with self.lock:
            self.done += 1
            if result.ok:
                logger.info("[%d/%d] done   %s: %.2f%% (%.0f s)", self.done, self.total, result.cell.name,
                            result.accuracy if result.accuracy is not None else float("nan"), result.seconds)
            else:
                logger.warning("[%d/%d] FAILED %s: %s", self.done, self.total, result.cell.name, result.error)


def run_pool(cells: Sequence[Cell], workers: Optional[int] = None, python: str = sys.executable) -> List[CellResult]:
    """Local subprocesses: one worker per visible GPU (or ``workers``; several may share a GPU)."""
    gpus = visible_gpus()
    workers = workers or max(len(gpus), 1)
    slots: "queue.Queue[Optional[str]]" = queue.Queue()
    for i in range(workers):
        slots.put(gpus[i % len(gpus)] if gpus else None)
    logger.info("Running %d cell(s) on %d local worker(s)%s", len(cells), workers,
                f" over GPU(s) {', '.join(gpus)}" if gpus else " (no GPU visible)")
    progress = _Progress(len(cells))

    def work(cell: Cell) -> CellResult:
        gpu = slots.get()
        try:
            return run_cell(cell, gpu=gpu, python=python)
        finally:
            slots.put(gpu)

    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for fut in as_completed([pool.submit(work, c) for c in cells]):
            results.append(fut.result())
            progress(results[-1])
    return results


def make_submitit_executor(kind: str, folder: str, timeout_min: int = 240, partition: Optional[str] = None,
                           gpus_per_node: int = 1, cpus_per_task: int = 8, mem_gb: Optional[int] = None,
                           array_parallelism: Optional[int] = None, slurm_params: Optional[Dict[str, str]] = None):
    import submitit

    if kind == "debug":
        return submitit.DebugExecutor(folder)
    if kind == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=timeout_min, gpus_per_node=min(gpus_per_node, len(visible_gpus())))
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = dict(timeout_min=timeout_min, gpus_per_node=gpus_per_node, cpus_per_task=cpus_per_task,
                  name="taskres-grid")
    if mem_gb:
        params["mem_gb"] = mem_gb
    if partition:
        params["slurm_partition"] = partition
    if array_parallelism:
        params["slurm_array_parallelism"] = array_parallelism
    params.update({f"slurm_{k}": v for k, v in (slurm_params or {}).items()})
    ex.update_parameters(**params)
    return ex


def run_submitit(cells: Sequence[Cell], executor) -> List[CellResult]:
    """Submit the cells as one job array; each job runs its ``train.py`` in the job's own process."""
    from submitit.helpers import as_completed as jobs_as_completed

    # Jobs unpickle ``run_cell`` from this package: the repository must be importable in their environment,
    # which is this one at submission time.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, saved) if p)
    try:
        jobs = executor.map_array(functools.partial(run_cell, in_process=True), list(cells))
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    logger.info("Submitted %d job(s) with %s (logs in %s)", len(jobs), type(executor).__name__, executor.folder)
    progress = _Progress(len(cells))
    cell_of = {id(job): cell for job, cell in zip(jobs, cells)}
    # The debug executor runs a job when its result is asked for: ask in order. Others: as they finish.
    ordered = jobs if type(executor).__name__ == "DebugExecutor" else jobs_as_completed(jobs)
    results = []
    for job in ordered:
        cell = cell_of[id(job)]
        try:
            result = job.result()
        except Exception as err:  # the job itself died (timeout, preemption, out of memory, ...)
            paths = getattr(job, "paths", None)
            where = f" (job logs: {paths.stdout}, {paths.stderr})" if paths is not None else ""
            result = CellResult(cell, False, error=f"job {job.job_id} failed: {_last_line(str(err))}{where}")
        results.append(result)
        progress(result)
    return results


def run_grid(cells: Sequence[Cell], executor: str = "pool", workers: Optional[int] = None,
             submitit_folder: str = "", python: str = sys.executable, **submitit_kwargs) -> GridReport:
    """Run every unfinished cell; return what ran, what was skipped and what failed."""
    report = GridReport(planned=list(cells))
    todo = []
    for c in cells:
        (report.skipped if c.finished else todo).append(c)
    logger.info("%d cell(s): %d finished already (skipped), %d to run", len(cells), len(report.skipped), len(todo))
    if not todo:
        return report
    if executor == "pool":
        ran = run_pool(todo, workers, python)
    elif executor in ("local", "slurm", "debug"):
        ran = run_submitit(todo, make_submitit_executor(executor, submitit_folder or ".submitit", **submitit_kwargs))
    else:
        raise GridError(f"Unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    order = {c: i for i, c in enumerate(todo)}
    report.ran = sorted(ran, key=lambda r: order[r.cell])
    return report


def log_report(report: GridReport) -> None:
    ok = [r for r in report.ran if r.ok]
    logger.info("Grid: %d planned, %d skipped (finished before), %d ran now, %d failed", len(report.planned),
                len(report.skipped), len(ok), len(report.failed))
    for path in report.blocked:
        logger.warning("Not evaluated: the trained run %s has not finished (rerun the same command)", path)
    for note in report.notes:
        logger.info("Note: %s", note)
    for r in report.failed:
        logger.error("FAILED %s: %s\n    logs: %s", r.cell.name, r.error, ", ".join(r.logs) or r.cell.out_dir)
    if report.failed:
        logger.error("%d run(s) failed; rerun the same command to retry only those (finished runs are skipped)",
                     len(report.failed))


# ---- command line -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.reproduce.grid", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Everything after `--` is passed to every run as KEY VALUE overrides.")
    p.add_argument("--methods", nargs="+", default=list(PAPER_METHODS), help="trainer names (see recipes.py)")
    p.add_argument("--datasets", nargs="+", default=list(PAPER_DATASETS), help="dataset config names")
    p.add_argument("--shots", nargs="+", type=int, default=None,
                   help=f"default: {' '.join(map(str, PAPER_SHOTS))} (16 with --eval-variants and the protocols "
                        "other than fewshot)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(PAPER_SEEDS))
    p.add_argument("--backbone", default="RN50", help="RN50, ViT-B/16, name:pretrained or a checkpoint file")
    p.add_argument("--data", default=os.environ.get("DATA", ""), help="datasets root (default: $DATA)")
    p.add_argument("--output", default=os.environ.get("OUTPUT", "output"), help="results root (default: $OUTPUT or output)")
    p.add_argument("--cache-dir", default="", help="feature cache (default: OUTPUT/feature_cache, as the launchers)")
    p.add_argument("--input-size", type=int, default=None,
                   help="image side (default: the backbone's); another value makes modified runs (own folders)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override every recipe's number of epochs: modified runs, in their own folders, never "
                        "counted as the paper grid by tools.report")
    p.add_argument("--protocol", choices=PROTOCOLS, default="fewshot",
                   help="fewshot (the paper's grid), base2novel (CoCoOp: train on base classes, test on base and new), "
                        "cross_dataset (16-shot ImageNet to the other datasets), dg (ImageNet to its variants)")
    p.add_argument("--track", choices=TRACKS, default=None,
                   help="selection track: paper (the default: each method selects on its original's data, never "
                        "test), fewshot_val (min(K, 4) val images per class for every method) or valfree (no "
                        "validation data; fixed settings for methods that select on val)")
    p.add_argument("--eval-variants", action="store_true",
                   help="evaluate finished ImageNet runs on the variants instead of training")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help="with --eval-variants")
    p.add_argument("--dry-run", action="store_true", help="print the runs (marking finished ones) and exit")
    p.add_argument("--executor", choices=EXECUTORS, default="pool",
                   help="pool: local train.py processes (--workers); slurm: submitit job array; local/debug: submitit's "
                        "local executors (local starts every job at once: for checking the submitit path, not for "
                        "a large grid)")
    p.add_argument("--workers", type=int, default=None, help="pool: workers (default: one per visible GPU, else 1)")
    p.add_argument("--python", default=sys.executable, help="pool: interpreter for train.py")
    p.add_argument("--submitit-folder", default="", help="submitit logs (default: OUTPUT/.submitit)")
    p.add_argument("--timeout-min", type=int, default=240, help="slurm/local: time limit per run")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--gpus-per-node", type=int, default=1)
    p.add_argument("--cpus-per-task", type=int, default=8)
    p.add_argument("--mem-gb", type=int, default=None)
    p.add_argument("--array-parallelism", type=int, default=None, help="slurm: most array tasks at once")
    p.add_argument("--slurm-param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other submitit slurm parameter, e.g. account=abc or qos=high")
    return p


def plan_from_args(args, extra: Sequence[str]) -> ProtocolPlan:
    if args.eval_variants:
        return ProtocolPlan([], lambda pending=False: plan_variants(
            args.methods, args.shots or [16], args.seeds, args.backbone, args.data, args.output, args.variants,
            args.cache_dir, args.input_size, extra, args.epochs, args.track, pending))
    shots = args.shots or (list(PAPER_SHOTS) if args.protocol == "fewshot" else [16])
    return plan_protocol(args.protocol, args.methods, args.datasets, shots, args.seeds, args.backbone, args.data,
                         args.output, args.cache_dir, args.input_size, args.epochs, extra, args.track, args.variants)


def _print_dry_run(cells: Sequence[Cell], missing: Sequence[str], notes: Sequence[str], cache_dir: str) -> None:
    waiting = set(missing)
    for c in cells:
        state = "[done] " if c.finished else ("[after training] " if c.source_dir in waiting else "[run]  ")
        print(state + c.command() + (f"  # {c.note}" if c.note else ""))
    for note in notes:
        print(f"[note] {note}")
    n_done = sum(c.finished for c in cells)
    print(f"{len(cells)} run(s): {n_done} finished, {len(cells) - n_done} to run"
          + (f"; evaluations of {len(missing)} trained run(s) are planned once they finish" if missing else ""))
    from scripts.reproduce.cost import grid_summary
    print(grid_summary(list(cells), cache_dir))


def main(argv: Optional[Sequence[str]] = None) -> GridReport:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args = build_parser().parse_args(argv)
    if len(extra) % 2:
        raise SystemExit(f"error: the overrides after -- must be KEY VALUE pairs, got {extra}")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if not args.dry_run and (not args.data or not os.path.isdir(args.data)):
        raise SystemExit(f"error: --data {args.data!r} is not a folder; pass the datasets root (or set DATA)")
    try:
        plan = plan_from_args(args, extra)
        evals, missing = plan.evals(pending=True) if plan.evals is not None and args.dry_run else ([], [])
    except (GridError, RecipeError) as err:
        raise SystemExit(f"error: {err}") from None
    for note in plan.notes:
        logger.info("%s", note)
    if args.dry_run:
        # An evaluation waits for its trained run: those of unfinished runs are listed (and costed) without the
        # checkpoint epoch, which the real run reads once training has finished.
        _print_dry_run(plan.train + evals, missing, plan.notes,
                       args.cache_dir or os.path.join(os.path.abspath(args.output), "feature_cache"))
        cells = plan.train + evals
        return GridReport(planned=cells, skipped=[c for c in cells if c.finished], blocked=missing, notes=plan.notes)
    slurm_params = dict(kv.split("=", 1) for kv in args.slurm_param)
    run = functools.partial(run_grid, executor=args.executor, workers=args.workers,
                            submitit_folder=args.submitit_folder or os.path.join(os.path.abspath(args.output),
                                                                                 ".submitit"),
                            python=args.python,
                            **({} if args.executor in ("pool", "debug") else dict(
                                timeout_min=args.timeout_min, partition=args.slurm_partition,
                                gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task,
                                mem_gb=args.mem_gb, array_parallelism=args.array_parallelism,
                                slurm_params=slurm_params)))
    report = run(plan.train) if plan.train else GridReport()
    if plan.evals is not None:
        try:
            evals, missing = plan.evals()
        except (GridError, RecipeError) as err:
            raise SystemExit(f"error: {err}") from None
        second = run(evals)
        report.planned += second.planned
        report.skipped += second.skipped
        report.ran += second.ran
        report.blocked = missing
    report.notes = plan.notes
    log_report(report)
    return report


def cli() -> None:
    report = main()
    sys.exit(1 if report.failed or report.blocked else 0)


if __name__ == "__main__":
    cli()
