"""Run the paper's grid (methods × datasets × shots × seeds), resumably and in parallel.

    python -m scripts.reproduce.grid --data DATA --output output            # the paper's RN50 grid
    python -m scripts.reproduce.grid --methods TaskRes --datasets caltech101 --shots 1 16 --dry-run

Runs, protocols, executors, pre-flight checks and costs: docs/grid.md.
"""
import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence, Tuple

from scripts.reproduce.cost import cost_summary, encoder_cost
from scripts.reproduce.execution import EXECUTORS, GridReport, log_report, run_grid
from scripts.reproduce.planning import PAPER_METHODS, PLANNING_ERRORS, TRACKS, Cell, GridRequest, ProtocolPlan
from scripts.reproduce.preflight import Preflight, check_grid
from scripts.reproduce.protocols import EVAL_VARIANTS, PROTOCOLS
from tools.names import FEWSHOT_DATASETS, PAPER_SEEDS, PAPER_SHOTS, VARIANT_DATASETS

logger = logging.getLogger("scripts.reproduce.grid")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.reproduce.grid", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Everything after `--` is passed to every run as KEY VALUE overrides.")
    p.add_argument("--methods", nargs="+", default=list(PAPER_METHODS), help="trainer names")
    p.add_argument("--datasets", nargs="+", default=[c for c, _, _ in FEWSHOT_DATASETS], help="dataset config names")
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
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="fewshot",
                   help="; ".join(f"{p.name}: {p.help}" for p in PROTOCOLS.values()))
    p.add_argument("--track", choices=TRACKS, default=None,
                   help="selection track (datasets/validation.py); default: the default track. valfree reads no "
                        "validation data (fixed settings for methods that select on val)")
    p.add_argument("--eval-variants", action="store_true",
                   help="evaluate finished ImageNet runs on the variants instead of training")
    p.add_argument("--variants", nargs="+", default=[c for c, _, _ in VARIANT_DATASETS],
                   help="with --eval-variants and --protocol dg")
    p.add_argument("--dry-run", action="store_true",
                   help="print the runs (marking finished ones), their cost and the pre-flight checks, and exit")
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


def plan_from_args(args, extra: Sequence[str]) -> Tuple[GridRequest, ProtocolPlan, List[Cell], List[str]]:
    """The request, its plan, every cell (evaluations of unfinished runs included) and the runs those wait for."""
    protocol = EVAL_VARIANTS if args.eval_variants else PROTOCOLS[args.protocol]
    req = GridRequest(args.methods, args.datasets, args.shots or protocol.default_shots, args.seeds, args.backbone,
                      args.data or "$DATA", args.output, args.cache_dir, args.input_size, args.epochs, extra,
                      args.track, args.variants)
    plan = protocol.plan(req)
    # An evaluation waits for its trained run: those of unfinished runs are listed (and costed) without the
    # checkpoint epoch, which the real run reads once training has finished.
    evals, missing = plan.evals(pending=True) if plan.evals is not None else ([], [])
    return req, plan, plan.train + evals, missing


def _print_dry_run(cells: Sequence[Cell], missing: Sequence[str], notes: Sequence[str], cost, backbone: str,
                   checks: Preflight) -> None:
    waiting = set(missing)
    for c in cells:
        state = "[done] " if c.finished else ("[after training] " if c.source_dir in waiting else "[run]  ")
        print(state + c.command() + (f"  # {c.note}" if c.note else ""))
    for note in notes:
        print(f"[note] {note}")
    n_done = sum(c.finished for c in cells)
    print(f"{len(cells)} run(s): {n_done} finished, {len(cells) - n_done} to run"
          + (f"; evaluations of {len(missing)} trained run(s) are planned once they finish" if missing else ""))
    print(cost_summary(cells, cost, backbone))
    print("\n".join(checks.lines()))


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
        req, plan, cells, missing = plan_from_args(args, extra)
    except PLANNING_ERRORS as err:
        raise SystemExit(f"error: {err}") from None
    cost = encoder_cost(cells, req.cache_dir)
    checks = check_grid(req, cells, cost)
    if args.dry_run:
        _print_dry_run(cells, missing, plan.notes, cost, req.backbone, checks)
        return GridReport(planned=cells, skipped=[c for c in cells if c.finished], blocked=missing, notes=plan.notes,
                          problems=checks.problems)
    for line in checks.lines():
        logger.info("%s", line)
    if checks.problems:
        raise SystemExit(1)
    for note in plan.notes:
        logger.info("Note: %s", note)
    options = dict(executor=args.executor, workers=args.workers, python=args.python,
                   submitit_folder=args.submitit_folder or os.path.join(req.output, ".submitit"))
    if args.executor not in ("pool", "debug"):
        options.update(timeout_min=args.timeout_min, partition=args.slurm_partition, gpus_per_node=args.gpus_per_node,
                       cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, array_parallelism=args.array_parallelism,
                       slurm_params=dict(kv.split("=", 1) for kv in args.slurm_param))
    report = GridReport(notes=plan.notes)
    if plan.train:
        run_grid(plan.train, report, **options)
    if plan.evals is not None:
        try:
            evals, report.blocked = plan.evals()
        except PLANNING_ERRORS as err:
            raise SystemExit(f"error: {err}") from None
        run_grid(evals, report, **options)
    log_report(report)
    return report


if __name__ == "__main__":
    report = main()
    sys.exit(1 if report.failed or report.blocked or report.problems else 0)
