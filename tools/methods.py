"""The methods of a report, named as their runs name themselves.

Every run row carries its method's display name, table position and shot-freeness: from its ``metrics.json``
(schema 2), or from ``tools.legacy`` for a run written before (schema 1). A name no run in the tree uses (a
published-only row of ``published.csv``) is named by ``tools.legacy``, else printed as it is (``PLOT++``).
"""
from dataclasses import dataclass, replace
from typing import Dict, FrozenSet, Iterable, Tuple

from tools.legacy import SCHEMA_1, MethodNames, names_of

SHARED = "◇"  # marks, in a track's table, a method whose runs serve every track (it reads no validation data)


@dataclass(frozen=True)
class Catalog:
    known: Dict[str, MethodNames]       # result name (a row's ``method``) -> its names, as its runs record them
    shared: FrozenSet[str] = frozenset()  # result names marked ``SHARED`` in "(ours)" rows

    @classmethod
    def from_rows(cls, rows: Iterable) -> "Catalog":
        """The names of every method in ``rows``; where runs of one method disagree, the newest schema wins."""
        known: Dict[str, MethodNames] = {}
        for r in sorted(rows, key=lambda r: -r.schema):
            known.setdefault(r.method, MethodNames(r.label, r.table_order, r.shot_free, r.selects_on_val))
        return cls(known)

    def marked(self, shared: Iterable[str]) -> "Catalog":
        return replace(self, shared=frozenset(shared))

    def names(self, method: str) -> MethodNames:
        return self.known.get(method) or names_of(method)

    def label(self, method: str) -> str:
        return self.names(method).label

    def shot_free(self, method: str) -> bool:
        return self.names(method).shot_free

    def ours(self, method: str) -> str:
        """The row name of our result: ``Tip-Adapter-F (ours)``, ``TaskRes ◇ (ours)``."""
        return f"{self.label(method)}{' ' + SHARED if method in self.shared else ''} (ours)"

    def paper(self, method: str) -> str:
        return f"{self.label(method)} (paper)"

    def sort_key(self, method: str) -> Tuple:
        """Declared table order first (the paper's methods), then unordered methods we ran or knew at schema 1,
        then published-only names, each group by name."""
        n = self.names(method)
        return (n.table_order is None, n.table_order or 0, method not in self.known and method not in SCHEMA_1,
                method)
