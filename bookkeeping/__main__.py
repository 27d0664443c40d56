"""``python -m bookkeeping recipe|plan``: the launchers' (and users') view of recipes and run folders.

``recipe METHOD DATASET SHOTS`` prints the recipe run as one shell-quoted ``train.py`` command; ``--argv``
prints, for the launchers, the run folder's tag then the ``train.py`` arguments, one per line.
``plan --seeds "1 2" -- TRAIN_ARGS`` prints ``STATE<TAB>FOLDER<TAB>NOTE`` per seed (``{seed}`` in an argument is
replaced), STATE being ``run`` or ``done``; a folder holding another run stops it with one line (exit 2).
"""
import argparse
import logging
import shlex
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence

from bookkeeping.config import UserError, eval_of, in_user_terms, parse
from bookkeeping.folders import backbone_tag, folder_state, read_metrics, run_folder
from bookkeeping.identity import RunIdentity, describe_deviation, identify, spec_of_run
from bookkeeping.recipes import RecipeError, get_recipe, recipe_argv
from engine import ENGINE_NAME

logger = logging.getLogger(__name__)


@dataclass
class Plan:
    seed: str
    state: str
    folder: str
    identity: RunIdentity
    note: str = ""


def plan(train_argv: Sequence[str], seeds: Sequence[str]) -> List[Plan]:
    """For each seed: where ``train.py --reuse`` would run and whether it would (``run``) or reuse (``done``)."""
    plans = []
    for seed in seeds:
        args, cfg = parse([a.replace("{seed}", str(seed)) for a in train_argv])
        source = read_metrics(args.model_dir) if args.eval_only and args.model_dir else None
        ident = identify(cfg, ENGINE_NAME, eval_of(args), source)
        folder = run_folder(cfg, ident, args.eval_only) if args.reuse else cfg.OUTPUT_DIR
        state, why = folder_state(folder, ident)
        if state == "conflict":
            raise UserError(why)
        note = f"modified run: {describe_deviation(ident.deviation)}" if ident.deviation else why
        plans.append(Plan(str(seed), state, folder, ident, note))
    return plans


def launcher_argv(method: str, dataset: str, shots: int, backbone: str, epochs: str = "") -> List[str]:
    """The run folder's tag, then the recipe's ``train.py`` arguments (``EPOCHS`` added for a method that trains)."""
    recipe = get_recipe(method)
    argv = [recipe.tag(backbone_tag(backbone), shots)] + recipe_argv(method, dataset, shots, backbone)
    if epochs:
        if spec_of_run(method).training_free:
            logger.warning("EPOCHS=%s ignored: %s trains no epochs", epochs, method)
        else:
            argv += ["OPTIM.MAX_EPOCH", epochs]
    return argv


def command_line(method: str, dataset: str, shots: int, backbone: str) -> str:
    """The recipe run of seed 1 as one pasteable command (data root from ``$DATA``)."""
    recipe = get_recipe(method)
    out = f"output/{dataset}/{method}/{recipe.tag(backbone_tag(backbone), shots)}/seed1"
    argv = ["--seed", "1", "--output-dir", out, "--reuse"] + recipe_argv(method, dataset, shots, backbone)
    return 'python train.py --root "$DATA" ' + " ".join(shlex.quote(a) for a in argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(prog="python -m bookkeeping", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recipe", help="print the recipe run as one train.py command")
    r.add_argument("method")
    r.add_argument("dataset")
    r.add_argument("shots", type=int)
    r.add_argument("--backbone", default="RN50")
    r.add_argument("--epochs", default="", help="with --argv: OPTIM.MAX_EPOCH for a method that trains")
    r.add_argument("--argv", action="store_true", help="the launchers' format: the folder tag, then one argument a line")
    pl = sub.add_parser("plan", help="print 'STATE<TAB>FOLDER<TAB>NOTE' per seed for a train.py command line")
    pl.add_argument("--seeds", default="1")
    pl.add_argument("train_argv", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    try:
        if args.command == "recipe" and args.argv:
            print("\n".join(launcher_argv(args.method, args.dataset, args.shots, args.backbone, args.epochs)))
        elif args.command == "recipe":
            print(command_line(args.method, args.dataset, args.shots, args.backbone))
        else:
            train_argv = args.train_argv[1:] if args.train_argv[:1] == ["--"] else args.train_argv
            for pl in plan(train_argv, args.seeds.split()):
                print(f"{pl.state}\t{pl.folder}\t{pl.note}")
        return 0
    except (RecipeError, UserError) as err:
        print(f"error: {in_user_terms(str(err))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
