"""``python -m bookkeeping recipe|plan``: the launchers' (and users') view of recipes and run folders.

What each prints: docs/bookkeeping.md.
"""
import argparse
import logging
import shlex
import sys
from typing import List, NamedTuple, Optional, Sequence

from bookkeeping.config import UserError, in_user_terms, parse
from bookkeeping.folders import backbone_tag, folder_state, resolve_run
from bookkeeping.identity import describe_deviation, spec_of_run
from bookkeeping.recipes import RecipeError, get_recipe, recipe_argv

logger = logging.getLogger(__name__)


class Plan(NamedTuple):
    state: str
    folder: str
    note: str = ""


def plan(train_argv: Sequence[str], seeds: Sequence[str]) -> List[Plan]:
    """For each seed: where ``train.py --reuse`` would run and whether it would (``run``) or reuse (``done``)."""
    plans = []
    for seed in seeds:
        ident, folder = resolve_run(*parse([a.replace("{seed}", str(seed)) for a in train_argv]))
        state, why = folder_state(folder, ident)
        if state == "conflict":
            raise UserError(why)
        note = f"modified run: {describe_deviation(ident.deviation)}" if ident.deviation else why
        plans.append(Plan(state, folder, note))
    return plans


def recipe_output(method: str, dataset: str, shots: int, backbone: str, epochs: str = "", launcher: bool = False) -> str:
    """The recipe run of seed 1 as one pasteable command (data root from ``$DATA``); ``launcher``: the run folder's
    tag, then the recipe's ``train.py`` arguments one a line (``epochs`` added for a method that trains)."""
    tag = get_recipe(method).tag(backbone_tag(backbone), shots)
    argv = recipe_argv(method, dataset, shots, backbone)
    if not launcher:
        argv = ["--seed", "1", "--output-dir", f"output/{dataset}/{method}/{tag}/seed1", "--reuse"] + argv
        return 'python train.py --root "$DATA" ' + " ".join(shlex.quote(a) for a in argv)
    if epochs and spec_of_run(method).training_free:
        logger.warning("EPOCHS=%s ignored: %s trains no epochs", epochs, method)
    elif epochs:
        argv += ["OPTIM.MAX_EPOCH", epochs]
    return "\n".join([tag] + argv)


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
        if args.command == "recipe":
            print(recipe_output(args.method, args.dataset, args.shots, args.backbone, args.epochs, args.argv))
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
