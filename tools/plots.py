"""Few-shot curves: accuracy vs shots, one panel per dataset plus the 11-dataset average.

Each method we ran is one solid line (mean over seeds, shaded ± std); its published numbers, where
there are any, are a dashed line of the same colour (a horizontal one for zero-shot methods). The
figure is built on matplotlib's object API with the Agg canvas: no pyplot state, no display needed.
"""
from typing import Dict, Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tools.names import AVERAGE, FEWSHOT_NAMES, PAPER_SHOTS, backbone_tag
from tools.published import Published
from tools.tables import Summary, backbones, dataset_average, methods, published_average


def fewshot_figure(summary: Summary, published: Published, backbone: str,
                   paper_backbone: Optional[str] = None) -> Figure:
    """The figure: panels in the paper's dataset order, then the average. Lines carry their method's
    label (``TaskRes``; ``TaskRes (paper)`` for the dashed published line, from ``paper_backbone``'s
    published numbers when given, else ``backbone``'s)."""
    method_list = methods(summary, backbone)  # in table order
    fig = Figure(figsize=(16, 11), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 4).ravel()
    colors = {m: f"C{i % 10}" for i, m in enumerate(method_list)}
    for ax, dataset in zip(axes, FEWSHOT_NAMES + (AVERAGE,)):
        ax.set_title("Average over 11 datasets" if dataset == AVERAGE else dataset, fontsize=11)
        for m in method_list:
            _plot_ours(ax, summary, backbone, m, dataset, colors[m])
            _plot_paper(ax, published, summary.names, paper_backbone or backbone, m, dataset, colors[m])
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(PAPER_SHOTS), [str(s) for s in PAPER_SHOTS])
        ax.set_xlabel("shots per class")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, alpha=0.3)
    legend = {}  # label -> its first handle, over every panel
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=min(len(legend), 6))
    fig.suptitle(f"Few-shot accuracy, {backbone} (solid: ours, mean ± std over seeds; dashed: published)")
    return fig


def _plot_ours(ax, summary, backbone, method, dataset, color) -> None:
    shot_free = summary.names.shot_free(method)
    shots = [0] if shot_free else sorted({k[3] for k in summary if k[0] == backbone and k[1] == method})
    if dataset == AVERAGE:
        averages = [(s, dataset_average(summary, backbone, method, s)[0]) for s in shots]
        points = [(s, v, 0.0) for s, v in averages if v is not None]
    else:
        points = [(s, st.mean, st.std) for s in shots if (st := summary.get((backbone, method, dataset, s)))]
    if shot_free:  # one result for every shot count: a horizontal line
        points = [(x, v, sd) for _, v, sd in points for x in (PAPER_SHOTS[0], PAPER_SHOTS[-1])]
    if not points:
        return
    xs, ys, sds = zip(*points)
    ax.plot(xs, ys, "-" if shot_free else "-o", color=color, label=summary.names.label(method), markersize=4)
    if any(sds):
        ax.fill_between(xs, [y - s for y, s in zip(ys, sds)], [y + s for y, s in zip(ys, sds)], color=color, alpha=0.15)


def _plot_paper(ax, published, names, backbone, method, dataset, color) -> None:
    shot_free = names.shot_free(method)
    if shot_free and dataset != AVERAGE:
        value = published.get(method, dataset, PAPER_SHOTS[0], backbone)
        points = [] if value is None else [(PAPER_SHOTS[0], value), (PAPER_SHOTS[-1], value)]
    else:
        points = [(s, published_average(published, method, s, backbone) if dataset == AVERAGE
                   else published.get(method, dataset, s, backbone)) for s in PAPER_SHOTS]
        points = [(s, v) for s, v in points if v is not None]
    if not points:
        return
    xs, ys = zip(*points)
    sparse = len(xs) < len(PAPER_SHOTS) and not shot_free  # e.g. published at 1 and 16 shots only
    ax.plot(xs, ys, "--", color=color, label=names.paper(method), marker="x" if sparse else None)


def save_fewshot_plots(summary: Summary, published: Published, out_prefix: str,
                       paper_backbone: Optional[str] = None) -> Dict[str, Figure]:
    """One PNG per backbone, ``<out_prefix>_<backbone tag>.png``; returns {path: figure}."""
    written = {}
    for b in backbones(summary):
        fig = fewshot_figure(summary, published, b, paper_backbone=paper_backbone)
        path = f"{out_prefix}_{backbone_tag(b)}.png"
        fig.savefig(path, dpi=100)
        written[path] = fig
    return written
