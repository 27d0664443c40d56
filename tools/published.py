"""The published numbers (``published.csv``), printed as "paper" beside ours.

``published.csv`` holds every reference number of the paper-facts sheet, one per line, in long
format: ``table, method, backbone, dataset, shots, accuracy, source``. ``table`` says which
published table a number comes from:

- ``fewshot``: the per-dataset table (RN50; zero-shot CLIP with the single template, TaskRes at
  1-16 shots, CLIP-Adapter and Tip-Adapter-F at 1 and 16 shots);
- ``average``: 11-dataset averages (``dataset`` is ``Average``);
- ``imagenet``: ImageNet accuracy per method and shot count (zero-shot: the 7-template ensemble);
- ``variants``: ImageNet (16 shots) to ImageNet-V2/-Sketch/-A/-R;
- ``backbones``: TaskRes at 16 shots on ImageNet by backbone;
- ``b2n_base``, ``b2n_new``, ``b2n_hm``: base-to-novel (CoCoOp's protocol) accuracy on the base classes, on
  the new classes, and their harmonic mean (``dataset`` a dataset or ``Average``; 16 shots, zero-shot 0);
- ``cross_dataset``: 16-shot ImageNet evaluated on another dataset (``dataset`` the target).

Every row names its true source: the per-dataset zero-shot (single template) numbers are CoOp's;
Tip-Adapter-F and CLIP-Adapter per dataset come from the Tip-Adapter results log (their averages are
the means of its 11 numbers); the ImageNet-by-shots numbers from the Tip-Adapter paper's table; the
TaskRes per-dataset numbers from a re-run in a NeurIPS 2024 paper (HC), not from the TaskRes paper,
which plots them; the variants and backbone tables from the TaskRes paper. The base-to-novel rows are the 11-dataset
averages (ViT-B/16) that MaPLe's and PromptSRC's READMEs print (CLIP, CoOp and CoCoOp there are
CoCoOp's Table 1 averages) and, for CLIP-LoRA, KgCoOp, ProGrad and TCP, the CLIP-SVD README's table. The
ViT-B/16 few-shot rows are 11-dataset averages at 1-16 shots from the CLIP-SVD README (Koleilat et al. 2025), which
collects them from each method's paper (CLIP-LoRA, LP++, ProKeR, GDA, ...); methods not implemented here (MaPLe,
ProGrad, KgCoOp, ProKeR, AdaLoRA, TCP, CLIP-SVD) show as "paper" rows only. GDA's own per-dataset numbers come
from its repository's logs (RN50 at 1-16 shots; RN101, ViT-B/32 and ViT-B/16 at 16 shots). Other per-dataset
ViT-B/16 few-shot, per-dataset base-to-novel and cross-dataset numbers are not in the file: no source we could
read and cite gives them (a number we cannot cite stays out). GDA's base-to-novel row is left out too: its printed HM (78.72) is not the
harmonic mean of its printed base and new accuracies (78.96).

Methods use result names (``TipAdapterF``; the tables print their labels, see ``tools.methods``); datasets use ``DATASET.NAME``; zero-shot numbers have
``shots`` 0. Two sources disagree slightly on a few ImageNet numbers (Tip-Adapter-F at 1 shot: 61.13
in the per-dataset table, 61.32 in the ImageNet-by-shots list; at 16 shots 65.51 vs 65.43 in the
variants table): every number is kept with its table, and each of our tables reads its own.
"""
import csv
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

PUBLISHED_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "published.csv")
TABLES = ("fewshot", "average", "imagenet", "variants", "backbones", "b2n_base", "b2n_new", "b2n_hm", "cross_dataset")


@dataclass(frozen=True)
class PublishedNumber:
    table: str
    method: str
    backbone: str
    dataset: str
    shots: int
    accuracy: float
    source: str


class Published:
    """Look-ups into the published numbers, by table with fall-backs between tables."""

    def __init__(self, numbers: Iterable[PublishedNumber]):
        self.numbers: List[PublishedNumber] = list(numbers)
        self._index: Dict[Tuple[str, str, str, str, int], float] = {
            (n.table, n.method, n.backbone, n.dataset, n.shots): n.accuracy for n in self.numbers}

    def get(self, method: str, dataset: str, shots: int, backbone: str = "RN50",
            tables: Tuple[str, ...] = ("fewshot", "average", "imagenet")) -> Optional[float]:
        """The published accuracy, looked up in ``tables`` in order; None when not published.

        A number stored with shots 0 (a zero-shot method's: only shot-free methods have one) stands at every shot
        count.
        """
        found = (self._index.get((t, method, backbone, dataset, k)) for t in tables for k in (shots, 0))
        return next((v for v in found if v is not None), None)

    def methods(self, table: Optional[str] = None, backbone: str = "RN50") -> List[str]:
        return list(dict.fromkeys(n.method for n in self.numbers
                                  if (table is None or n.table == table) and n.backbone == backbone))

    def select(self, table: str) -> List[PublishedNumber]:
        return [n for n in self.numbers if n.table == table]


def load_published(path: str = PUBLISHED_CSV) -> Published:
    numbers = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            if row["table"] not in TABLES:
                raise ValueError(f"{path}:{line}: unknown table {row['table']!r} (valid: {', '.join(TABLES)})")
            numbers.append(PublishedNumber(row["table"], row["method"], row["backbone"], row["dataset"],
                                           int(row["shots"]), float(row["accuracy"]), row["source"]))
    return Published(numbers)
