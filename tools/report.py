"""One command from a results tree to a report: ``python -m tools.report OUTPUT_ROOT --out RESULTS.md``.

The files it writes, what the markdown holds and in which order, tracks and modified runs: docs/reports.md.
Nothing here imports the training code or torch.
"""
import argparse
import logging
import os
from datetime import datetime, timezone
from typing import List, Optional, Set

from tools import tables
from tools.aggregate import RunRow, collect, write_rows_csv
from tools.methods import SHARED
from tools.names import FEWSHOT_NAMES, TRACK_NAMES, TRACK_RULES, TRACK_TITLES, VARIANT_NAMES, backbone_tag
from tools.plots import save_fewshot_plots
from tools.published import PUBLISHED_CSV, load_published

logger = logging.getLogger(__name__)


def build_report(root: str, out: str, published_csv: str = PUBLISHED_CSV, paper_backbone: Optional[str] = None,
                 include_modified: bool = False) -> dict:
    """Write the report files; returns their paths and the objects behind them (for tests and callers)."""
    collection = collect(root)
    published = load_published(published_csv)
    all_rows = list(collection.rows)
    modified = [r for r in collection.rows if r.variant]
    if include_modified:
        for r in modified:
            r.method = r.label = f"{r.label} [modified {r.variant}]"
    else:
        collection.rows = [r for r in collection.rows if not r.variant]
    summary = tables.summarize(fewshot_rows(collection.rows, FIRST_TRACK))
    stem = os.path.splitext(out)[0]
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    csv_path, runs_path = f"{stem}.csv", f"{stem}_runs.csv"
    tables.write_summary_csv(summary, published, csv_path, paper_backbone)
    write_rows_csv(all_rows, runs_path)
    figures = save_fewshot_plots(summary, published, f"{stem}_fewshot", paper_backbone)

    rel = lambda p: os.path.relpath(p, out_dir)  # noqa: E731
    n_log = sum(r.source == "log.txt" for r in collection.rows)
    lines: List[str] = [
        "# Results",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m tools.report {root}` from "
        f"{len(collection.rows)} runs ({n_log} read from `log.txt`). Accuracy in %, mean ± sample std over seeds; "
        f"`(n=k)` marks a cell with fewer seeds than the others; {tables.MISSING} is a missing result (never 0). "
        f"The average is over the {len(FEWSHOT_NAMES)} datasets and is given only when all are present. "
        f"\"paper\" rows: `{os.path.relpath(published_csv)}`"
        + (f", {paper_backbone} numbers beside every backbone." if paper_backbone else ", same backbone.")
        + f" The tables under each backbone heading are the few-shot protocol in the {TRACK_TITLES[FIRST_TRACK]} "
        f"track (`{FIRST_TRACK}`); the other tracks follow, each with runs of its own. A line under each table says "
        "what its track allows.",
        "",
        f"Tables as CSV: [`{rel(csv_path)}`]({rel(csv_path)}); every run: [`{rel(runs_path)}`]({rel(runs_path)}).",
        "",
    ]
    note = track_note(FIRST_TRACK)
    for b in tables.backbones(summary) or ["RN50"]:
        lines += [f"## {b}", ""]
        for k in tables.table_shots(summary, b):
            title = "Zero-shot" if k == 0 else f"{k} shot{'s' if k != 1 else ''}"
            lines += _table(title, tables.fewshot_table(summary, published, b, k, paper_backbone), note)
        lines += _table("ImageNet by number of shots",
                        tables.imagenet_table(summary, published, b, paper_backbone), note)
        for k in tables.variant_shots(summary, b):
            lines += _table(f"ImageNet ({k} shots) to ImageNet-V2 / -Sketch / -A / -R",
                            tables.variants_table(summary, published, b, k, paper_backbone), note)
        plot = [p for p in figures if p.endswith(f"_{backbone_tag(b)}.png")]
        if plot:
            lines += ["### Few-shot curves", "", f"![few-shot curves, {b}]({rel(plot[0])})", ""]
    lines += ["## TaskRes across backbones (ImageNet, 16 shots)", "", tables.backbone_table(summary, published), "",
              note, ""]
    lines += protocol_sections(collection.rows, published, paper_backbone)
    if modified and not include_modified:
        groups = {}
        for r in modified:
            groups.setdefault((r.label, r.dataset, r.variant, os.path.dirname(r.path)), []).append(r.seed)
        lines += ["## Modified runs (not in the tables)", "",
                  f"{len(modified)} run(s) differ from their method's published recipe (see `modified` in their "
                  "`metrics.json`); `--include-modified` shows them as rows of their own.", ""]
        lines += [f"- {m} on {d}, variant `{v}`, seeds {', '.join(map(str, sorted(seeds)))}: `{folder}`"
                  for (m, d, v, folder), seeds in sorted(groups.items())] + [""]
    if collection.unfinished or collection.unreadable:
        lines += ["## Runs without a result", ""]
    for paths, text in ((collection.unfinished, "These folders have a `log.txt` but no test accuracy (unfinished "
                         "or failed); rerun the grid to retry them."),
                        (collection.unreadable, "These files could not be read as a run (each with the reason); "
                         "their runs are in no table.")):
        if paths:
            lines += [text, ""] + [f"- `{p}`" for p in paths] + [""]
    with open(out, "w") as f:
        f.write("\n".join(lines))
    logger.info("Report: %s (%d runs); tables: %s; runs: %s; plots: %s", out, len(collection.rows), csv_path,
                runs_path, ", ".join(figures) or "none")
    return {"markdown": out, "csv": csv_path, "runs_csv": runs_path, "figures": figures, "summary": summary,
            "rows": collection.rows, "unfinished": collection.unfinished, "unreadable": collection.unreadable,
            "modified": modified}


FIRST_TRACK = TRACK_NAMES[0]  # the paper's protocol: the tables under each backbone heading


def _table(heading: str, table: str, note: str) -> List[str]:
    return [f"### {heading}", "", table, "", note, ""]


def track_note(track: str) -> str:
    """The line under each table: what its track allows."""
    return f"*Track `{track}` ({TRACK_TITLES[track]}): {TRACK_RULES[track]}.*"


def fewshot_rows(rows: List[RunRow], track: str) -> List[RunRow]:
    """The few-shot protocol's rows of one track: all classes, own runs and ImageNet-variant evaluations."""
    return [r for r in rows if r.in_track(track) and r.classes == "all"
            and (r.kind == "run" or (r.dataset in VARIANT_NAMES and r.source_dataset in ("", "ImageNet")))]


def _serves_every_track(row: RunRow) -> bool:
    return set(TRACK_NAMES) <= set(row.tracks.split("+"))


def serving_every_track(rows: List[RunRow]) -> Set[str]:
    """The methods whose rows all serve every track (they read no validation data): marked ◇ beyond the first."""
    return {r.method for r in rows} - {r.method for r in rows if not _serves_every_track(r)}


def _shown(rows: List[RunRow], track: str) -> bool:
    """A table of ``track`` is shown when it has rows, and beyond the first track only with runs of its own (a
    table of shared runs alone would repeat the first track's)."""
    return bool(rows) and (track == FIRST_TRACK or not all(_serves_every_track(r) for r in rows))


def protocol_sections(rows: List[RunRow], published, paper_backbone: Optional[str] = None) -> List[str]:
    """Each later track's few-shot tables (when it has runs of its own), then base-to-novel and cross-dataset
    tables per track."""
    lines: List[str] = []
    shared_note = (f"{SHARED}: the method reads no validation data; the same runs as in the "
                   f"{TRACK_TITLES[FIRST_TRACK]} tables. The \"paper\" rows are each paper's own numbers, chosen as "
                   "that paper chose them (e.g. Tip-Adapter's search on validation or test data): a reference, not a "
                   "result of this track.")
    for track in TRACK_NAMES[1:]:
        chosen = fewshot_rows(rows, track)
        if not _shown(chosen, track):
            continue
        shared, summary = serving_every_track(chosen), tables.summarize(chosen)
        title, note = TRACK_TITLES[track], track_note(track)
        lines += [f"## {title[0].upper() + title[1:]} track", "", shared_note, ""]
        for b in tables.backbones(summary):
            for k in tables.table_shots(summary, b):
                shots = "zero-shot" if k == 0 else f"{k} shot{'s' if k != 1 else ''}"
                lines += _table(f"{b}, {shots} ({title})",
                                tables.fewshot_table(summary, published, b, k, paper_backbone, shared), note)
            if any(key[0] == b and key[2] in VARIANT_NAMES for key in summary):
                for k in tables.variant_shots(summary, b):
                    lines += _table(f"{b}, ImageNet ({k} shots) to its variants ({title})",
                                    tables.variants_table(summary, published, b, k, paper_backbone, shared), note)
    for track in TRACK_NAMES:
        chosen = [r for r in rows if r.in_track(track)]
        later, note = track != FIRST_TRACK, track_note(track)
        b2n = [r for r in chosen if r.classes in ("base", "new")]
        if _shown(b2n, track):
            shared = serving_every_track(b2n) if later else set()
            lines += [f"## Base-to-novel ({TRACK_TITLES[track]})", "",
                      "Trained on the base half of each dataset's classes, tested on its base and new test classes; "
                      "HM = 2 base new / (base + new) of the seed means (the average row: HM of the averages). "
                      f"{tables.NOT_TRANSFERABLE}: the method's trained state is per class (a residual, a probe, a "
                      "cache) and has no classifier for classes it never saw; deployed on them it falls back to "
                      "zero-shot CLIP (its own row)." + (" " + shared_note if later else ""), ""]
            for b in sorted({r.backbone for r in b2n}):
                for k in tables.base2novel_shots(b2n, b):
                    table = tables.base2novel_table(b2n, published, b, k, paper_backbone, shared)
                    lines += _table(f"{b}, {k} shots", table, note)
        cross = [r for r in chosen if r.classes == "all" and r.source_dataset == "ImageNet" and r.kind == "eval"
                 and r.dataset not in VARIANT_NAMES]
        if _shown(cross, track):
            shared = serving_every_track(cross) if later else set()
            own = [r for r in chosen if r.kind == "run" and r.dataset == "ImageNet" and r.classes == "all"]
            lines += [f"## Cross-dataset transfer ({TRACK_TITLES[track]})", "",
                      "Trained on ImageNet, evaluated on each other dataset's test set (methods whose trained state "
                      "is class-agnostic, and zero-shot CLIP)." + (" " + shared_note if later else ""), ""]
            for b in sorted({r.backbone for r in cross}):
                for k in sorted({r.shots for r in cross if r.backbone == b and r.shots} or {16}):
                    lines += _table(f"{b}, {k} shots", tables.cross_dataset_table(
                        cross + own, published, b, k, paper_backbone=paper_backbone, shared=shared), note)
    return lines


def main(argv: Optional[List[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="results root (the grid's --output, the launchers' OUTPUT)")
    p.add_argument("--out", default="RESULTS.md", help="markdown file; CSV and PNG files are written beside it")
    p.add_argument("--published", default=PUBLISHED_CSV, help="published numbers (CSV, see tools/published.py)")
    p.add_argument("--paper-backbone", default=None,
                   help="put this backbone's published numbers beside every backbone (default: the same backbone)")
    p.add_argument("--include-modified", action="store_true",
                   help="also show runs that differ from their recipe, as rows labelled '<method> [modified <hex>]'")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return build_report(args.root, args.out, args.published, args.paper_backbone, args.include_modified)
    except FileNotFoundError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
