"""The published numbers (``published.csv``), printed as "paper" beside ours.

The file's format, its tables and every number's source: docs/reports.md, "Published numbers".
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
        """The published accuracy, looked up in ``tables`` in order (a shots-0 number stands at every shot
        count); None when not published."""
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
