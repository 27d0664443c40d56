"""The evaluation protocols (docs/grid.md): one object each, saying which runs it trains and how it evaluates them.

A new protocol is one subclass here, added to ``PROTOCOLS``.
"""
from dataclasses import replace
from typing import Dict, List, Sequence, Tuple

from scripts.reproduce import planning
from tools.names import PAPER_SHOTS

Target = Tuple[str, str, str]  # (evaluated dataset, folder under the run, DATASET.SUBSAMPLE_CLASSES)


class Protocol:
    """Few-shot by default; a subclass changes which runs are trained and what each is evaluated on."""

    name = "fewshot"
    help = "the paper's grid"
    default_shots: Tuple[int, ...] = PAPER_SHOTS
    classes = "all"      # DATASET.SUBSAMPLE_CLASSES of the trained runs
    trains = True        # False: only evaluate runs trained before (planned, never run)

    def training(self, req: planning.GridRequest) -> Tuple[planning.GridRequest, List[str]]:
        """The request of the runs to train, and notes on the methods left out (in part), with why."""
        return req, []

    def targets(self, req: planning.GridRequest, run: planning.Cell) -> Sequence[Target]:
        """What a finished run is evaluated on besides its own test set (nothing for few-shot)."""
        return ()

    def plan(self, req: planning.GridRequest) -> planning.ProtocolPlan:
        trained, notes = self.training(req)
        train = planning.plan_runs(trained, self.classes) if trained.methods else []
        planning.check_datasets(sorted({d for run in train for d, _, _ in self.targets(req, run)}))  # before any training
        evals = None
        if type(self).targets is not Protocol.targets:
            def evals(pending: bool = False):
                return planning.plan_evals(req, train, lambda run: self.targets(req, run), pending)
        return planning.ProtocolPlan(train if self.trains else [], evals, notes)


def _split(methods: Sequence[str]) -> Tuple[List[str], List[str]]:
    moving = [m for m in methods if planning.transfers_to_other_classes(m)]
    return moving, [m for m in methods if m not in moving]


class BaseToNovel(Protocol):
    name = "base2novel"
    help = "CoCoOp: train on base classes, test on base and new"
    default_shots = (16,)
    classes = "base"

    def training(self, req):
        _, fixed = _split(req.methods)
        return req, [f"{m}: its trained state is per class, so it is trained and tested on the base classes only; "
                     "the report shows its new-class accuracy and HM as n/a" for m in fixed]

    def targets(self, req, run):
        return [(run.dataset, "eval_new", "new")] if planning.transfers_to_other_classes(run.method) else ()


class CrossDataset(Protocol):
    name = "cross_dataset"
    help = "16-shot ImageNet to the other datasets"
    default_shots = (16,)

    def training(self, req):
        moving, fixed = _split(req.methods)
        return (replace(req, methods=moving, datasets=(planning.SOURCE_DATASET,)),
                [f"{m}: skipped, its trained state is per class and cannot classify another dataset's classes"
                 for m in fixed])

    def targets(self, req, run):
        return [(d, f"eval_{d}", "all") for d in req.datasets if d != planning.SOURCE_DATASET]


class DomainGeneralisation(Protocol):
    name = "dg"
    help = "ImageNet to its variants"
    default_shots = (16,)

    def training(self, req):
        return replace(req, datasets=(planning.SOURCE_DATASET,)), []

    def targets(self, req, run):
        return [(v, f"eval_{v}", "all") for v in req.variants]


class EvalVariants(DomainGeneralisation):
    name = "variants"
    help = "evaluate finished ImageNet runs on the variants (--eval-variants)"
    trains = False


PROTOCOLS: Dict[str, Protocol] = {p.name: p for p in (Protocol(), BaseToNovel(), CrossDataset(),
                                                      DomainGeneralisation())}
EVAL_VARIANTS = EvalVariants()
