"""Running planned cells with the executors ``pool``, ``slurm``, ``local`` and ``debug`` (docs/grid.md, "Executors").

A cell's output goes to its ``grid.out``; a failed cell does not stop the others.
"""
import contextlib
import functools
import logging
import os
import queue
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple
from unittest import mock

import submitit
from submitit.helpers import as_completed as jobs_as_completed
from tqdm import tqdm

import train
from scripts.reproduce.planning import REPO_ROOT, Cell, GridError, read_metrics, spec

logger = logging.getLogger(__name__)

OUTPUT_FILE = "grid.out"  # a cell's captured stdout/stderr (or traceback), next to train.py's log.txt
EXECUTORS = ("pool", "local", "slurm", "debug")


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
    problems: List[str] = field(default_factory=list)     # pre-flight: what is missing, and the fix

    @property
    def failed(self) -> List[CellResult]:
        return [r for r in self.ran if not r.ok]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _run_subprocess(cell: Cell, gpu: Optional[str], python: str) -> Tuple[bool, str]:
    env = None if gpu is None else dict(os.environ, CUDA_VISIBLE_DEVICES=gpu)
    out_path = os.path.join(cell.out_dir, OUTPUT_FILE)
    with open(out_path, "w") as out:
        proc = subprocess.run([python, "train.py", *cell.argv], cwd=REPO_ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    if proc.returncode == 0:
        return True, ""
    with open(out_path, errors="replace") as f:
        return False, f"exit {proc.returncode}: {_last_line(f.read())}"


def _run_in_process(cell: Cell) -> Tuple[bool, str]:
    """``train.main(argv)`` in this process, its output into the cell's ``grid.out``; logging handlers and the
    working directory are restored."""
    root = logging.getLogger()
    handlers, level, cwd = list(root.handlers), root.level, os.getcwd()
    # Mute the driver's console handlers for the run (train.py adds its own, which writes into grid.out).
    consoles = [h for h in handlers if type(h) is logging.StreamHandler]
    for h in consoles:
        root.removeHandler(h)
    os.chdir(REPO_ROOT)
    out = open(os.path.join(cell.out_dir, OUTPUT_FILE), "w")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            train.main(list(cell.argv))
        return True, ""
    except SystemExit as err:
        message = str(err.code) if err.code not in (None, 0) else ""
        if message:
            out.write(message + "\n")
        return not message, message
    except Exception as err:  # a crash in one cell must not stop the grid
        out.write(traceback.format_exc())
        return False, f"{type(err).__name__}: {err}"
    finally:
        out.close()
        os.chdir(cwd)
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        for h in consoles:
            root.addHandler(h)
        root.setLevel(level)


def run_cell(cell: Cell, in_process: bool = False, gpu: Optional[str] = None,
             python: str = sys.executable) -> CellResult:
    """Run one cell and report; never raises for a failed run (it is recorded instead)."""
    start = time.time()
    os.makedirs(cell.out_dir, exist_ok=True)
    try:
        ok, error = _run_in_process(cell) if in_process else _run_subprocess(cell, gpu, python)
    except OSError as err:  # e.g. the interpreter cannot be started
        ok, error = False, f"{type(err).__name__}: {err}"
    if ok and not cell.finished:
        ok, error = False, "train.py ended without writing metrics.json"
    accuracy = (read_metrics(cell.out_dir) or {}).get("accuracy") if ok else None
    return CellResult(cell, ok, time.time() - start, None if accuracy is None else float(accuracy), error)


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def result_line(result: CellResult) -> str:
    """One console line per finished run: label, dataset, shots, seed, accuracy (or the error), time."""
    c = result.cell
    dataset = f"{c.source_dataset}->{c.dataset}" if c.source_dir else c.dataset
    if c.classes != "all":
        dataset += f" ({c.classes})"
    shots = f"{c.shots}-shot" if c.shots else "0-shot"
    head = f"{spec(c.method).label or c.method:<16} {dataset:<24} {shots:>7} seed {c.seed}"
    if result.ok:
        acc = "  n/a " if result.accuracy is None else f"{result.accuracy:6.2f}%"
        return f"{head}  {acc}  {_duration(result.seconds)}"
    return f"{head}  FAILED {_duration(result.seconds)}: {result.error} (log: {', '.join(result.logs) or c.out_dir})"


def visible_gpus() -> List[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else what ``nvidia-smi`` lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):  # no nvidia-smi, or it hangs
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def pool_slots(workers: Optional[int] = None) -> List[Optional[str]]:
    """The GPU each pool worker uses (None: no GPU visible): one worker per visible GPU by default; with
    ``workers`` given, the GPUs are shared round-robin."""
    gpus = visible_gpus()
    return [gpus[i % len(gpus)] if gpus else None for i in range(workers or max(len(gpus), 1))]


def run_pool(cells: Sequence[Cell], workers: Optional[int] = None, python: str = sys.executable) -> Iterator[CellResult]:
    """Local ``train.py`` subprocesses, each worker pinned to its GPU; results as they finish."""
    slots: "queue.Queue[Optional[str]]" = queue.Queue()
    gpus = pool_slots(workers)
    for gpu in gpus:
        slots.put(gpu)
    shown = sorted({g for g in gpus if g is not None})
    logger.info("Running %d run(s) on %d local worker(s)%s", len(cells), len(gpus),
                f" over GPU(s) {', '.join(shown)}" if shown else " (no GPU visible)")

    def work(cell: Cell) -> CellResult:
        gpu = slots.get()
        try:
            return run_cell(cell, gpu=gpu, python=python)
        finally:
            slots.put(gpu)

    with ThreadPoolExecutor(max_workers=len(gpus)) as pool:
        for fut in as_completed([pool.submit(work, c) for c in cells]):
            yield fut.result()


def make_submitit_executor(kind: str, folder: str, timeout_min: int = 240, partition: Optional[str] = None,
                           gpus_per_node: int = 1, cpus_per_task: int = 8, mem_gb: Optional[int] = None,
                           array_parallelism: Optional[int] = None, slurm_params: Optional[Dict[str, str]] = None):
    if kind == "debug":
        return submitit.DebugExecutor(folder)
    if kind == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=timeout_min, gpus_per_node=min(gpus_per_node, len(visible_gpus())))
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    optional = {"mem_gb": mem_gb, "slurm_partition": partition, "slurm_array_parallelism": array_parallelism}
    ex.update_parameters(timeout_min=timeout_min, gpus_per_node=gpus_per_node, cpus_per_task=cpus_per_task,
                         name="taskres-grid", **{k: v for k, v in optional.items() if v},
                         **{f"slurm_{k}": v for k, v in (slurm_params or {}).items()})
    return ex


def run_submitit(cells: Sequence[Cell], executor) -> Iterator[CellResult]:
    """Submit the cells as one job array; each job runs its ``train.py`` in the job's own process."""
    # Jobs unpickle ``run_cell`` from this package: the repository must be importable in their environment,
    # which is this one at submission time.
    path = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)
    with mock.patch.dict(os.environ, PYTHONPATH=path):
        jobs = executor.map_array(functools.partial(run_cell, in_process=True), list(cells))
    logger.info("Submitted %d job(s) with %s (logs in %s)", len(jobs), type(executor).__name__, executor.folder)
    cell_of = {id(job): cell for job, cell in zip(jobs, cells)}
    # The debug executor runs a job when its result is asked for: ask in order. Others: as they finish.
    for job in jobs if isinstance(executor, submitit.DebugExecutor) else jobs_as_completed(jobs):
        try:
            yield job.result()
        except Exception as err:  # the job itself died (timeout, preemption, out of memory, ...)
            paths = getattr(job, "paths", None)
            where = f" (job logs: {paths.stdout}, {paths.stderr})" if paths is not None else ""
            yield CellResult(cell_of[id(job)], False, error=f"job {job.job_id} failed: {_last_line(str(err))}{where}")


def run_grid(cells: Sequence[Cell], report: GridReport, executor: str = "pool", workers: Optional[int] = None,
             submitit_folder: str = "", python: str = sys.executable, **submitit_kwargs) -> GridReport:
    """Run every unfinished cell; add to ``report`` what ran, what was skipped and what failed."""
    if executor not in EXECUTORS:
        raise GridError(f"Unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    report.planned += cells
    todo = []
    for c in cells:
        (report.skipped if c.finished else todo).append(c)
    logger.info("%d run(s): %d finished already (skipped), %d to run", len(cells), len(cells) - len(todo), len(todo))
    if not todo:
        return report
    if executor == "pool":
        results = run_pool(todo, workers, python)
    else:
        results = run_submitit(todo, make_submitit_executor(executor, submitit_folder or ".submitit", **submitit_kwargs))
    ran = []
    # An overall progress bar (stderr) with one line per finished run above it.
    with tqdm(total=len(todo), unit="run", dynamic_ncols=True, file=sys.stderr, leave=False) as bar:
        for result in results:
            bar.write(result_line(result), file=sys.stdout)
            bar.update(1)
            ran.append(result)
    order = {c: i for i, c in enumerate(todo)}
    report.ran += sorted(ran, key=lambda r: order[r.cell])
    return report


def log_report(report: GridReport) -> None:
    logger.info("Grid: %d planned, %d skipped (finished before), %d ran now, %d failed", len(report.planned),
                len(report.skipped), len(report.ran) - len(report.failed), len(report.failed))
    for path in report.blocked:
        logger.warning("Not evaluated: the trained run %s has not finished (rerun the same command)", path)
    for note in report.notes:
        logger.info("Note: %s", note)
    for r in report.failed:
        logger.error("FAILED %s: %s\n    logs: %s", r.cell.name, r.error, ", ".join(r.logs) or r.cell.out_dir)
    if report.failed:
        logger.error("%d run(s) failed; rerun the same command to retry only those (finished runs are skipped)",
                     len(report.failed))
