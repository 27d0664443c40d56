"""Tables from run rows: mean ± std over seeds per (method, dataset, shots), with "paper" beside "ours".

The statistics and how cells are marked (``(n=k)``, ``—``, ``incomplete (k/11)``): docs/reports.md.
"""
import statistics
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from tools.aggregate import RunRow, write_csv
from tools.methods import Catalog
from tools.names import AVERAGE, FEWSHOT_NAMES, PAPER_SHOTS, VARIANT_NAMES, dataset_label
from tools.published import Published

MISSING = "—"
Key = Tuple[str, str, str, int]  # (backbone, method, dataset, shots)


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int
    seeds: Tuple[int, ...]


def _stat(pairs: Sequence[Tuple[int, float]]) -> Stat:
    seeds, accs = zip(*sorted(pairs))
    return Stat(statistics.mean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0, len(accs), seeds)


class Summary(Dict[Key, Stat]):
    """Mean ± std over seeds per (backbone, method, dataset, shots), and the names of its methods (``names``)."""

    def __init__(self, stats: Dict[Key, Stat], names: Catalog):
        super().__init__(stats)
        self.names = names


def summarize(rows: Iterable[RunRow]) -> Summary:
    """Mean ± std over seeds of the given rows (runs or evaluations: the caller chooses which) for every
    (backbone, method, dataset, shots); evaluations are keyed by the dataset they evaluated."""
    rows = list(rows)
    groups: Dict[Key, List[Tuple[int, float]]] = {}
    for r in rows:
        groups.setdefault((r.backbone, r.method, r.dataset, r.shots), []).append((r.seed, r.accuracy))
    return Summary({k: _stat(v) for k, v in groups.items()}, Catalog.from_rows(rows))


def lookup(summary: Summary, backbone: str, method: str, dataset: str, shots: int) -> Optional[Stat]:
    """Our result at ``shots``; a shot-free method's (stored with 0 shots) stands at every shot count."""
    return summary.get((backbone, method, dataset, 0 if summary.names.shot_free(method) else shots))


def _means(summary: Summary, backbone: str, method: str, datasets: Iterable[str], shots: int) -> List[float]:
    return [st.mean for d in datasets if (st := lookup(summary, backbone, method, d, shots)) is not None]


def dataset_average(summary: Summary, backbone: str, method: str, shots: int) -> Tuple[Optional[float], int]:
    """(mean of the 11 per-dataset means or None, number of datasets present)."""
    present = _means(summary, backbone, method, FEWSHOT_NAMES, shots)
    return (statistics.mean(present) if len(present) == len(FEWSHOT_NAMES) else None), len(present)


def published_average(published: Published, method: str, shots: int, backbone: str) -> Optional[float]:
    """The published 11-dataset average, or the mean of 11 published per-dataset numbers when all exist."""
    value = published.get(method, AVERAGE, shots, backbone, tables=("average",))
    if value is not None:
        return value
    values = [published.get(method, d, shots, backbone, tables=("fewshot",)) for d in FEWSHOT_NAMES]
    return statistics.mean(values) if None not in values else None


def fmt(stat: Optional[Stat], full_n: int = 0) -> str:
    if stat is None:
        return MISSING
    text = f"{stat.mean:.2f} ± {stat.std:.2f}" if stat.n > 1 else f"{stat.mean:.2f}"
    if full_n and stat.n < full_n:
        text += f" (n={stat.n})"
    return text


def fmt_value(value: Optional[float]) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _average_cell(means: Sequence[float], count: int) -> str:
    """The mean of ``count`` means, or ``incomplete (k/count)`` when some are missing."""
    return fmt_value(statistics.mean(means)) if len(means) == count else f"incomplete ({len(means)}/{count})"


def _ours_and_paper(names: Catalog, ours: Sequence[str], paper_methods: Iterable[str], our_cells: Callable,
                    paper_values: Callable) -> List[List[str]]:
    """Rows in table order: each method's "ours" row (``our_cells(m)``), then its "paper" row when any of
    ``paper_values(m)`` is published."""
    rows = []
    for m in sorted(set(ours) | set(paper_methods), key=names.sort_key):
        if m in ours:
            rows.append([names.ours(m)] + our_cells(m))
        paper = paper_values(m)
        if any(v is not None for v in paper):
            rows.append([names.paper(m)] + [fmt_value(v) for v in paper])
    return rows


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "(no results, none published)"
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def backbones(summary: Summary) -> List[str]:
    return sorted({k[0] for k in summary}, key=lambda b: (b != "RN50", b))


def methods(summary: Summary, backbone: str) -> List[str]:
    return sorted({k[1] for k in summary if k[0] == backbone}, key=summary.names.sort_key)


def _present(summary: Summary, backbone: str, datasets: Iterable[str], shots: int) -> List[str]:
    """Our methods with a result on any of ``datasets`` at ``shots``, in table order."""
    return [m for m in methods(summary, backbone) if _means(summary, backbone, m, datasets, shots)]


def full_seed_count(summary: Summary, backbone: str) -> int:
    """The most seeds any cell has (shot-free methods, run once, aside): fewer is marked ``(n=k)``."""
    return max((s.n for k, s in summary.items() if k[0] == backbone and not summary.names.shot_free(k[1])), default=0)


def table_shots(summary: Summary, backbone: str) -> List[int]:
    """Shot counts with few-shot results; ``[0]`` when only shot-free methods ran."""
    found = {k[3] for k in summary if k[0] == backbone and k[2] in FEWSHOT_NAMES}
    return sorted(found - {0}) or sorted(found)


def _cell(summary: Summary, backbone: str, method: str, dataset: str, shots: int, full_n: int) -> str:
    """Our formatted result (a shot-free method's, run once, never marked ``(n=k)``)."""
    return fmt(lookup(summary, backbone, method, dataset, shots), 0 if summary.names.shot_free(method) else full_n)


def fewshot_table(summary: Summary, published: Published, backbone: str, shots: int,
                  paper_backbone: Optional[str] = None, shared: Iterable[str] = ()) -> str:
    """Methods × (11 datasets + average) at one shot count; a "paper" row under each published method.
    ``shared``: methods whose "ours" row is marked as serving every track."""
    pb, names = paper_backbone or backbone, summary.names.marked(shared)
    full_n = full_seed_count(summary, backbone)
    header = ["Method"] + [dataset_label(d) for d in FEWSHOT_NAMES] + ["Average"]
    return _markdown(header, _ours_and_paper(
        names, _present(summary, backbone, FEWSHOT_NAMES, shots), published.methods(backbone=pb),
        lambda m: [_cell(summary, backbone, m, d, shots, full_n) for d in FEWSHOT_NAMES] + [
            _average_cell(_means(summary, backbone, m, FEWSHOT_NAMES, shots), len(FEWSHOT_NAMES))],
        lambda m: [published.get(m, d, shots, pb) for d in FEWSHOT_NAMES] + [
            published_average(published, m, shots, pb)]))


def imagenet_table(summary: Summary, published: Published, backbone: str,
                   paper_backbone: Optional[str] = None) -> str:
    """ImageNet accuracy per method and shot count, ours and published."""
    pb, names = paper_backbone or backbone, summary.names
    shot_list = sorted(set(PAPER_SHOTS) | {k[3] for k in summary if k[0] == backbone and k[2] == "ImageNet"} - {0})
    ours = [m for m in methods(summary, backbone) if any(lookup(summary, backbone, m, "ImageNet", s) for s in shot_list)]
    paper_methods = [m for m in published.methods(backbone=pb)
                     if any(published.get(m, "ImageNet", s, pb) is not None for s in shot_list)]
    full_n = full_seed_count(summary, backbone)
    return _markdown(["Method"] + [f"{s} shot{'s' if s != 1 else ''}" for s in shot_list], _ours_and_paper(
        names, ours, paper_methods,
        lambda m: [_cell(summary, backbone, m, "ImageNet", s, full_n) for s in shot_list],
        lambda m: [published.get(m, "ImageNet", s, pb, tables=("imagenet", "fewshot")) for s in shot_list]))


def variant_shots(summary: Summary, backbone: str) -> List[int]:
    """Shot counts with a trained model's ImageNet-variant result (16, the paper's, when there are none)."""
    found = sorted({k[3] for k in summary if k[0] == backbone and k[2] in VARIANT_NAMES} - {0})
    return found or [16]


def variants_table(summary: Summary, published: Published, backbone: str, shots: int,
                   paper_backbone: Optional[str] = None, shared: Iterable[str] = ()) -> str:
    """ImageNet (trained at ``shots``) to ImageNet-V2/-Sketch/-A/-R, ours and published."""
    pb, names = paper_backbone or backbone, summary.names.marked(shared)
    cols = ("ImageNet",) + VARIANT_NAMES
    full_n = full_seed_count(summary, backbone)
    header = ["Method"] + ["ImageNet" if d == "ImageNet" else f"ImageNet{dataset_label(d)}" for d in cols]
    return _markdown(header, _ours_and_paper(
        names, _present(summary, backbone, VARIANT_NAMES, shots), published.methods("variants", pb),
        lambda m: [_cell(summary, backbone, m, d, shots, full_n) for d in cols],
        lambda m: [published.get(m, d, shots, pb, tables=("variants",)) for d in cols]))


def backbone_table(summary: Summary, published: Published, method: str = "TaskRes", shots: int = 16) -> str:
    """One method on ImageNet at ``shots`` across backbones, ours and published."""
    paper = {n.backbone: n.accuracy for n in published.select("backbones") if n.method == method and n.shots == shots}
    ours = {k[0]: s for k, s in summary.items() if k[1] == method and k[2] == "ImageNet" and k[3] == shots}
    names = list(paper) + sorted(b for b in ours if b not in paper)
    rows = [[b, fmt(ours.get(b)), fmt_value(paper.get(b))] for b in names]
    label = summary.names.label(method)
    return _markdown(["Backbone", f"{label} ours", f"{label} paper"], rows)


CSV_FIELDS = ["backbone", "method", "label", "dataset", "shots", "n", "seeds", "mean", "std", "paper", "note"]


def write_summary_csv(summary: Summary, published: Published, path: str,
                      paper_backbone: Optional[str] = None) -> None:
    """One record per (backbone, method, dataset, shots) plus the 11-dataset averages; a missing value is empty."""
    records, names = [], summary.names
    for (b, m, d, k), s in sorted(summary.items(),
                                  key=lambda kv: (kv[0][0], names.sort_key(kv[0][1]), kv[0][2], kv[0][3])):
        tables = ("variants",) if d in VARIANT_NAMES else ("fewshot", "imagenet")
        records.append(dict(backbone=b, method=m, label=names.label(m), dataset=d, shots=k, n=s.n,
                            seeds=" ".join(map(str, s.seeds)), mean=round(s.mean, 4), std=round(s.std, 4),
                            paper=published.get(m, d, k, paper_backbone or b, tables=tables), note=""))
    for b in backbones(summary):
        for m in methods(summary, b):
            for k in sorted({key[3] for key in summary if key[0] == b and key[1] == m}):
                avg, n = dataset_average(summary, b, m, k)
                if n == 0:
                    continue
                records.append(dict(backbone=b, method=m, label=names.label(m), dataset=AVERAGE, shots=k, n="",
                                    seeds="", mean=None if avg is None else round(avg, 4), std=None,
                                    paper=published_average(published, m, k, paper_backbone or b),
                                    note="" if avg is not None else f"incomplete ({n}/{len(FEWSHOT_NAMES)})"))
    write_csv(path, CSV_FIELDS, ({k: "" if v is None else v for k, v in rec.items()} for rec in records))


# ---- the protocols beyond the few-shot table ------------------------------------------------------
NOT_TRANSFERABLE = "n/a ‡"  # a method whose trained state is per class has no new-class classifier


def harmonic_mean(base: Optional[float], new: Optional[float]) -> Optional[float]:
    """CoCoOp's H = 2 b n / (b + n); None when either is missing (0 when both are 0)."""
    if base is None or new is None:
        return None
    return 2 * base * new / (base + new) if base + new else 0.0


def base2novel_shots(rows: Iterable[RunRow], backbone: str) -> List[int]:
    """Shot counts of base-to-novel training runs (16, CoCoOp's, when a zero-shot method alone ran)."""
    found = sorted({r.shots for r in rows if r.backbone == backbone and r.classes == "base" and r.kind == "run"} - {0})
    return found or [16]


def base2novel_table(rows: Sequence[RunRow], published: Published, backbone: str, shots: int,
                     paper_backbone: Optional[str] = None, shared: Iterable[str] = ()) -> str:
    """Per dataset and on average: accuracy on the base classes, on the new ones, and their harmonic mean
    (what each cell holds: docs/reports.md)."""
    pb = paper_backbone or backbone
    mine = [r for r in rows if r.backbone == backbone]
    base = summarize(r for r in mine if r.classes == "base" and r.kind == "run")
    new = summarize(r for r in mine if r.classes == "new")
    names = base.names.marked(shared)
    agnostic = {r.method for r in mine if r.classes == "base" and (r.class_agnostic or r.shot_free)}
    present = _present(base, backbone, FEWSHOT_NAMES, shots)
    full_n = full_seed_count(base, backbone)
    table: List[List[str]] = []
    for d in FEWSHOT_NAMES:
        for m in present:
            b, n = lookup(base, backbone, m, d, shots), lookup(new, backbone, m, d, shots)
            if b is None and n is None:
                continue
            hm = harmonic_mean(b.mean if b else None, n.mean if n else None)
            cells = [_cell(new, backbone, m, d, shots, full_n), fmt_value(hm)] if m in agnostic else \
                [NOT_TRANSFERABLE] * 2
            table.append([dataset_label(d), names.ours(m), _cell(base, backbone, m, d, shots, full_n)] + cells)
    count = len(FEWSHOT_NAMES)
    for m in present:
        bases, news = (_means(s, backbone, m, FEWSHOT_NAMES, shots) for s in (base, new))
        complete = len(bases) == len(news) == count
        hm = harmonic_mean(statistics.mean(bases), statistics.mean(news)) if complete else None
        cells = [_average_cell(news, count), fmt_value(hm)] if m in agnostic else [NOT_TRANSFERABLE] * 2
        table.append([AVERAGE, names.ours(m), _average_cell(bases, count)] + cells)
    for d in FEWSHOT_NAMES + (AVERAGE,):
        for m in dict.fromkeys(published.methods("b2n_base", pb) + published.methods("b2n_hm", pb)):
            values = [published.get(m, d, shots, pb, tables=(t,)) for t in ("b2n_base", "b2n_new", "b2n_hm")]
            if any(v is not None for v in values):
                table.append([dataset_label(d), names.paper(m)] + [fmt_value(v) for v in values])
    return _markdown(["Dataset", "Method", "Base", "New", "HM"], table)


def cross_dataset_table(rows: Sequence[RunRow], published: Published, backbone: str, shots: int,
                        source: str = "ImageNet", paper_backbone: Optional[str] = None,
                        shared: Iterable[str] = ()) -> str:
    """A model trained on ``source`` (its own test accuracy first), evaluated on each other dataset; the
    average is over the targets, given only when all are present."""
    pb = paper_backbone or backbone
    mine = [r for r in rows if r.backbone == backbone and r.classes == "all"]
    targets = tuple(d for d in FEWSHOT_NAMES if d != source)
    evals = summarize(r for r in mine if r.kind == "eval" and r.source_dataset == source)
    own = summarize(r for r in mine if r.kind == "run" and r.dataset == source)
    names = evals.names.marked(shared)
    full_n = full_seed_count(evals, backbone)
    table = []
    for m in _present(evals, backbone, targets, shots):
        cells = [_cell(evals, backbone, m, d, shots, full_n) for d in targets]
        table.append([names.ours(m), _cell(own, backbone, m, source, shots, full_n)] + cells
                     + [_average_cell(_means(evals, backbone, m, targets, shots), len(targets))])
    for m in published.methods("cross_dataset", pb):
        values = [published.get(m, d, shots, pb, tables=("cross_dataset",)) for d in (source,) + targets + (AVERAGE,)]
        table.append([names.paper(m)] + [fmt_value(v) for v in values])
    header = ["Method", f"{dataset_label(source)} (source)"] + [dataset_label(d) for d in targets] + ["Average"]
    return _markdown(header, table)

