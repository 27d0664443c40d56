"""One command from a results tree to a report: ``python -m tools.report OUTPUT_ROOT --out RESULTS.md``.

Writes, next to ``RESULTS.md``: ``RESULTS.csv`` (mean, std, seeds and the published number per
method/dataset/shots, plus 11-dataset averages), ``RESULTS_runs.csv`` (one row per run) and
``RESULTS_fewshot_<backbone>.png`` (few-shot curves). The markdown holds, per backbone, the
few-shot table at each shot count, ImageNet by shots, ImageNet to its variants, and TaskRes across
backbones, each with the published numbers beside ours.

Only runs that follow their method's recipe fill the "ours" rows. Modified runs (another number of
epochs, input size, alpha, ...: ``metrics.json`` ``variant``) are listed under "Modified runs" and kept
out of the tables; ``--include-modified`` shows them as rows of their own, labelled
``<method> [modified <8 hex>]``.
"""
import argparse
import logging
import os
from datetime import datetime, timezone
from typing import List, Optional

from tools.aggregate import collect, write_rows_csv
from tools.names import FEWSHOT_NAMES, backbone_tag, modified_label
from tools.plots import save_fewshot_plots
from tools.published import PUBLISHED_CSV, load_published
from tools.tables import (
    MISSING,
    backbone_table,
    backbones,
    fewshot_table,
    imagenet_table,
    summarize,
    table_shots,
    variant_shots,
    variants_table,
    write_summary_csv,
)

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
            r.method = modified_label(r.method, r.variant)
    else:
        collection.rows = [r for r in collection.rows if not r.variant]
    summary = summarize(collection.rows)
    stem = os.path.splitext(out)[0]
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    csv_path, runs_path = f"{stem}.csv", f"{stem}_runs.csv"
    write_summary_csv(summary, published, csv_path, paper_backbone)
    write_rows_csv(all_rows, runs_path)
    figures = save_fewshot_plots(summary, published, f"{stem}_fewshot", paper_backbone)

    rel = lambda p: os.path.relpath(p, out_dir)  # noqa: E731
    n_log = sum(r.source == "log.txt" for r in collection.rows)
    lines: List[str] = [
        "# Results",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m tools.report {root}` from "
        f"{len(collection.rows)} runs ({n_log} read from `log.txt`). Accuracy in %, mean ± sample std over seeds; "
        f"`(n=k)` marks a cell with fewer seeds than the others; {MISSING} is a missing result (never 0). "
        f"The average is over the {len(FEWSHOT_NAMES)} datasets and is given only when all are present. "
        f"\"paper\" rows: `{os.path.relpath(published_csv)}`"
        + (f", {paper_backbone} numbers beside every backbone." if paper_backbone else ", same backbone."),
        "",
        f"Tables as CSV: [`{rel(csv_path)}`]({rel(csv_path)}); every run: [`{rel(runs_path)}`]({rel(runs_path)}).",
        "",
    ]
    all_backbones = backbones(summary) or ["RN50"]
    for b in all_backbones:
        lines += [f"## {b}", ""]
        for k in table_shots(summary, b):
            title = "Zero-shot" if k == 0 else f"{k} shot{'s' if k != 1 else ''}"
            lines += [f"### {title}", "", fewshot_table(summary, published, b, k, paper_backbone), ""]
        lines += ["### ImageNet by number of shots", "", imagenet_table(summary, published, b, paper_backbone), ""]
        for k in variant_shots(summary, b):
            lines += [f"### ImageNet ({k} shots) to ImageNet-V2 / -Sketch / -A / -R", "",
                      variants_table(summary, published, b, k, paper_backbone), ""]
        plot = [p for p in figures if p.endswith(f"_{backbone_tag(b)}.png")]
        if plot:
            lines += ["### Few-shot curves", "", f"![few-shot curves, {b}]({rel(plot[0])})", ""]
    lines += ["## TaskRes across backbones (ImageNet, 16 shots)", "", backbone_table(summary, published), ""]
    if modified and not include_modified:
        groups = {}
        for r in modified:
            groups.setdefault((r.method, r.dataset, r.variant, os.path.dirname(r.path)), []).append(r.seed)
        lines += ["## Modified runs (not in the tables)", "",
                  f"{len(modified)} run(s) differ from their method's published recipe (see `modified` in their "
                  "`metrics.json`); `--include-modified` shows them as rows of their own.", ""]
        lines += [f"- {m} on {d}, variant `{v}`, seeds {', '.join(map(str, sorted(seeds)))}: `{folder}`"
                  for (m, d, v, folder), seeds in sorted(groups.items())] + [""]
    if collection.unfinished:
        lines += ["## Runs without a result", "",
                  "These folders have a `log.txt` but no test accuracy (unfinished or failed); rerun the grid "
                  "to retry them.", ""]
        lines += [f"- `{p}`" for p in collection.unfinished] + [""]
    with open(out, "w") as f:
        f.write("\n".join(lines))
    logger.info("Report: %s (%d runs); tables: %s; runs: %s; plots: %s", out, len(collection.rows), csv_path,
                runs_path, ", ".join(figures) or "none")
    return {"markdown": out, "csv": csv_path, "runs_csv": runs_path, "figures": figures, "summary": summary,
            "rows": collection.rows, "unfinished": collection.unfinished, "modified": modified}


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
