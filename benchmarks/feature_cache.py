"""Feature-cache benchmark: TaskRes (and the other methods) with the cache off and on, on this device.

Every run is a fresh ``train.py`` process (``benchmarks/run_one.py``) on a random-weight CLIP and a dataset tree
written here. The modes (``reference``, ``accuracy``, ``scaling``, ``methods``, ``gpu``), their settings, commands
and results: docs/performance.md. ``--out FILE.md`` saves the markdown table.
"""
import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import REPO, markdown_table, random_clip  # noqa: E402
from scripts.demo import write_digits_tree  # noqa: E402
from tests.fixtures.synthetic_datasets import write_dataset  # noqa: E402

logger = logging.getLogger("benchmark")

METHODS = ("TaskRes", "ZeroshotCLIP", "LinearProbeCLIP", "CLIP_Adapter", "TipAdapter", "TipAdapterF", "CoOp")
METHOD_CONFIGS = {m: f"configs/trainers/{'TaskRes' if m == 'ZeroshotCLIP' else m}/rn50.yaml" for m in METHODS}
ARCH_SIZES = {"tiny": 32, "vit-small": 64, "RN50": 224, "ViT-B/16": 224}


def run(args, data: str, name: str, cache: Optional[str], trainer: str = "TaskRes", shots: int = 16,
        epochs: Optional[int] = None, seed: int = 1, dataset: str = "caltech101",
        extra: Sequence[str] = (), label: str = "", **columns) -> Dict:
    """One fresh process (``args.clip`` at ``args.size`` px, output in ``<workdir>/<name>``); its measurements
    (``label``: the trainer column's text, default ``trainer``; ``columns``: more columns, e.g. ``classes``)."""
    out, epochs = os.path.join(args.workdir, name), args.epochs if epochs is None else epochs
    argv = ["--root", data, "--output-dir", out, "--seed", str(seed), "--trainer", trainer,
            "--config-file", os.path.join(REPO, METHOD_CONFIGS[trainer]), "--backbone", args.clip,
            "--dataset-config-file", os.path.join(REPO, f"configs/datasets/{dataset}.yaml")]
    argv += ["--cache-dir", cache] if cache else ["--no-cache"]
    argv += [*extra, "DATASET.NUM_SHOTS", str(shots), "OPTIM.MAX_EPOCH", str(epochs),
             "INPUT.SIZE", f"({args.size}, {args.size})",
             "DATALOADER.NUM_WORKERS", str(min(4, os.cpu_count() or 1)), "TRAIN.PRINT_FREQ", "100000",
             "FEATURE_CACHE.NUM_VIEWS", str(args.views)]
    result_path = out + ".result.json"
    start = time.time()
    subprocess.run([sys.executable, os.path.join(REPO, "benchmarks/run_one.py"), result_path, "--", *argv],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    res = json.loads(Path(result_path).read_text())
    t = res["metrics"]["timings"]
    return {"trainer": label or trainer, "cache": bool(cache), "seed": seed, "shots": shots, "epochs": epochs,
            "extract_s": t.get("extract_s", 0.0), "epoch_s": t.get("epochs_s", 0.0) / (t.get("epochs_run") or 1),
            "wall_s": wall, "peak_rss_mb": res["peak_rss_mb"], "cuda_peak_mb": res["cuda_peak_mb"],
            "cache_mb": sum(p.stat().st_size for p in Path(cache).rglob("*.pt")) / 2**20 if cache else 0.0,
            "accuracy": res["metrics"]["accuracy"], **columns}


def table(rows: List[Dict], title: str) -> str:
    cols = ["trainer", "cache", "seed", "shots", "epochs", "extract_s", "epoch_s", "wall_s", "peak_rss_mb", "cache_mb",
            "accuracy"]
    if any(r.get("classes") for r in rows):
        cols.insert(3, "classes")
    if any(r.get("cuda_peak_mb") for r in rows):
        cols.insert(-2, "cuda_peak_mb")

    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) and abs(v) < 1 else f"{v:.1f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    return "\n".join([f"### {title}", ""] + markdown_table(cols, cells))


def reference(args) -> str:
    data, cache = write_digits_tree(os.path.join(args.workdir, "digits")), os.path.join(args.workdir, "cache")
    rows = [run(args, data, f"on-s{s}", cache, seed=s) for s in args.seeds]
    rows.append(run(args, data, "on-alpha1", cache, seed=args.seeds[0], extra=["TRAINER.TaskRes.RESIDUAL_SCALE", "1.0"],
                    label="TaskRes (alpha 1.0, same cache)"))
    rows += [run(args, data, f"off-s{s}", None, seed=s) for s in args.seeds[: args.uncached_seeds]]
    on = [r for r in rows if r["cache"] and r["trainer"] == "TaskRes"]
    off = [r for r in rows if not r["cache"]]
    summary = [
        f"cached wall (seed {on[0]['seed']}, includes extraction): {on[0]['wall_s']:.1f} s; "
        f"uncached: {off[0]['wall_s']:.1f} s; speed-up {off[0]['wall_s'] / on[0]['wall_s']:.1f}x",
        f"cached training epochs in total: {on[0]['epoch_s'] * on[0]['epochs']:.2f} s = "
        f"{100 * on[0]['epoch_s'] * on[0]['epochs'] / max(on[0]['extract_s'], 1e-9):.2f}% of extraction "
        f"({on[0]['extract_s']:.1f} s)",
        f"accuracy cache on: {statistics.mean(r['accuracy'] for r in on):.2f} "
        f"(seeds {[round(r['accuracy'], 2) for r in on]}); cache off: {statistics.mean(r['accuracy'] for r in off):.2f} "
        f"(seeds {[round(r['accuracy'], 2) for r in off]})",
    ]
    return table(rows, f"Reference: TaskRes, digits, 16 shots, {args.epochs} epochs, random {args.arch} CLIP @ "
                       f"{args.size} px") + "\n\n" + "\n".join(f"- {s}" for s in summary)


def synthetic(args, classes: int, per_class: int) -> str:
    """A learnable synthetic Caltech101 tree of ``classes`` classes (written once)."""
    data = os.path.join(args.workdir, f"data-{classes}")
    if not os.path.isdir(data):
        write_dataset("Caltech101", data, num_classes=classes, per_class=per_class, image_size=args.size)
    return data


def accuracy(args) -> str:
    classes = args.classes[0]
    data, cache = synthetic(args, classes, 40), os.path.join(args.workdir, "cache")
    rows = [run(args, data, f"{'on' if c else 'off'}-s{s}", c, seed=s, shots=min(args.shots[-1], 16),
                extra=["OPTIM.LR", str(args.lr)]) for c in (cache, None) for s in args.seeds]
    zs = run(args, data, "zeroshot", cache, trainer="ZeroshotCLIP", epochs=200)
    on = [r["accuracy"] for r in rows if r["cache"]]
    off = [r["accuracy"] for r in rows if not r["cache"]]

    def sd(values):
        return statistics.stdev(values) if len(values) > 1 else 0.0

    return table(rows + [zs], f"Accuracy: TaskRes, synthetic {classes} classes, lr {args.lr}, {args.epochs} epochs, "
                              f"random {args.arch} CLIP @ {args.size} px") + (
        f"\n\n- cache on: {statistics.mean(on):.2f} +- {sd(on):.2f}; cache off: {statistics.mean(off):.2f} +- "
        f"{sd(off):.2f} (seeds {args.seeds}); zero-shot {zs['accuracy']:.2f}")


def scaling(args) -> str:
    """Cached TaskRes: classes sweep at the largest shot count, shots sweep at the middle class count."""
    top, shots_at = max(args.shots), args.classes[len(args.classes) // 2]
    per_class, val = 2 * top + 8, round(0.2 * (2 * top + 8))
    cells = [(c, top) for c in args.classes] + [(shots_at, k) for k in args.shots if k != top]
    rows = [run(args, synthetic(args, classes, per_class), f"c{classes}-k{shots}",
                os.path.join(args.workdir, f"cache-{classes}-{shots}"), shots=shots, classes=classes)
            for classes, shots in cells]
    return table(rows, f"Scaling: cached TaskRes, {args.epochs} epochs, random {args.arch} CLIP @ {args.size} px "
                       f"(per class: {top + 4} train, {val} val, {per_class - top - 4 - val} test images)")


def methods(args) -> str:
    data, cache = write_digits_tree(os.path.join(args.workdir, "digits")), os.path.join(args.workdir, "cache")
    rows = []
    for trainer in args.methods:
        if not os.path.isfile(os.path.join(REPO, METHOD_CONFIGS[trainer])):
            logger.warning("skipping %s: no config", trainer)
            continue
        rows += [run(args, data, f"{trainer}-{'on' if c else 'off'}", c, trainer=trainer) for c in (cache, None)]
    return table(rows, f"Every method, digits 16 shots, {args.epochs} epochs, random {args.arch} CLIP @ "
                       f"{args.size} px")


def gpu(args) -> str:
    classes, views = args.classes[-1], args.views or args.epochs
    data = os.path.join(args.workdir, "data-gpu")
    write_dataset("ImageNet", data, num_classes=classes, per_class=16, image_size=args.size)
    r = run(args, data, "gpu", os.path.join(args.workdir, "cache-gpu"), dataset="imagenet",
            extra=["TRAINER.TaskRes.PREC", "fp16"], classes=classes)
    rate = (16 * classes * views + 8 * classes) / r["extract_s"]
    note = (f"- extraction: {rate:.0f} images/s; TaskRes epoch {r['epoch_s']:.4f} s; projected 16-shot ImageNet "
            f"(16k train x {views} views + 50k test): {(16000 * views + 50000) / rate + 200 * r['epoch_s']:.0f} s")
    return table([r], f"GPU: {args.arch} @ {args.size} px, {classes} classes x 16 shots") + "\n\n" + note


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["reference", "accuracy", "scaling", "methods", "gpu"])
    p.add_argument("--lr", type=float, default=0.05, help="accuracy mode: learning rate (random CLIPs need a large one)")
    p.add_argument("--arch", default=None, choices=sorted(ARCH_SIZES))
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--uncached-seeds", type=int, default=1, help="uncached runs are slow: how many seeds to time")
    p.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--shots", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--views", type=int, default=10,
                   help="FEATURE_CACHE.NUM_VIEWS of cached runs (the tables in README were made with 10; 0 = paper protocol)")
    p.add_argument("--workdir", default="")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    args.arch = args.arch or {"reference": "vit-small", "gpu": "RN50"}.get(args.mode, "tiny")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="taskres-bench-")
    os.makedirs(args.workdir, exist_ok=True)
    args.size = ARCH_SIZES[args.arch]
    args.clip = random_clip(args.workdir, args.arch, args.size)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    text = globals()[args.mode](args)
    text = f"Device: {device}; command: python benchmarks/feature_cache.py {' '.join(argv or sys.argv[1:])}\n\n{text}\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
