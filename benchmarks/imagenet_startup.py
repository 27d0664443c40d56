"""ImageNet start-up: how long until the data of a run is ready, on a synthetic ImageNet-layout tree.

What is timed, the scenarios (``first``, ``new draw``, ``cached``) and the results: docs/performance.md.

    python benchmarks/imagenet_startup.py --root /tmp/imagenet_startup            # 1000 x (100 + 10) files
    python benchmarks/imagenet_startup.py --root /tmp/in_full --train-per-class 1300 --val-per-class 50
"""
import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r"""
import json, os, resource, sys, time
t0 = time.time()
sys.path.insert(0, {repo!r})
from engine import DataManager, get_cfg_default, set_random_seed
import datasets
t_import = time.time() - t0
rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cfg = get_cfg_default()
datasets.add_dataset_config(cfg)
cfg.DATASET.ROOT, cfg.DATASET.NAME, cfg.DATASET.NUM_SHOTS, cfg.SEED = {root!r}, "ImageNet", {shots}, {seed}
cfg.DATALOADER.NUM_WORKERS = 0
set_random_seed(cfg.SEED)
t1 = time.time()
dm = DataManager(cfg)
t_data = time.time() - t1
t2 = time.time()
val, _ = datasets.select_validation(dm.dataset, "ImageNet")
t_val = time.time() - t2
print(json.dumps({{"imports_s": t_import, "data_ready_s": t_data, "heldout_val_s": t_val,
                  "train": len(dm.dataset.train_x), "test": len(dm.dataset.test), "heldout_val": len(val),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_after_imports_mb": rss_imports,
                  "process_s": time.time() - t0}}))
"""


def tiny_jpeg(class_idx: int) -> bytes:
    """An 8x8 JPEG of one colour per class (the reader never decodes images at start-up)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), ((class_idx * 37) % 256, (class_idx * 91) % 256, (class_idx * 53) % 256)).save(
        buf, format="JPEG")
    return buf.getvalue()


def build_tree(root: str, classes: int, train_per_class: int, val_per_class: int) -> int:
    """Write ``root/imagenet`` in ImageNet's layout unless it is complete; return the number of images."""
    ddir = os.path.join(root, "imagenet")
    marker = os.path.join(ddir, ".complete-%d-%d-%d" % (classes, train_per_class, val_per_class))
    total = classes * (train_per_class + val_per_class)
    if os.path.isfile(marker):
        return total
    shutil.rmtree(ddir, ignore_errors=True)
    wnids = ["n%08d" % (1000000 + 7 * i) for i in range(classes)]
    os.makedirs(ddir)
    Path(ddir, "classnames.txt").write_text("".join(f"{w} class {i}\n" for i, w in enumerate(wnids)))
    start = time.time()
    for i, wnid in enumerate(wnids):
        data = tiny_jpeg(i)
        for split, n in (("train", train_per_class), ("val", val_per_class)):
            folder = os.path.join(ddir, "images", split, wnid)
            os.makedirs(folder)
            for j in range(n):
                name = f"{wnid}_{j}.JPEG" if split == "train" else f"ILSVRC2012_val_{i * n + j:08d}.JPEG"
                Path(folder, name).write_bytes(data)
    open(marker, "w").close()
    print(f"built {total} images in {time.time() - start:.0f} s under {ddir}", flush=True)
    return total


def probe(root: str, shots: int, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(repo=REPO, root=root, shots=shots, seed=seed)],
                         capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "TASKRES_ENGINE": os.environ.get("TASKRES_ENGINE", "builtin")})
    if out.returncode != 0:  # the probe's own last line (e.g. a reader's error naming the folder), not a traceback
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"error: the start-up probe (seed {seed}) failed: {last}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/tmp/imagenet_startup", help="where the synthetic tree is built")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=10)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    if os.path.commonpath([root, REPO]) == REPO:
        parser.error("build the tree outside the repository")
    total = build_tree(root, args.classes, args.train_per_class, args.val_per_class)
    ddir = os.path.join(root, "imagenet")
    shutil.rmtree(os.path.join(ddir, "split_fewshot"), ignore_errors=True)
    for name in ("lists.taskres.json", "preprocessed.pkl"):
        Path(ddir, name).unlink(missing_ok=True)

    rows = [("first (nothing cached)", probe(root, args.shots, 1)),
            ("new draw (list file cached)", probe(root, args.shots, 2))]
    cached = [probe(root, args.shots, 1) for _ in range(args.repeats)]
    median = {k: statistics.median(r[k] for r in cached) for k in cached[0]}
    rows.append((f"cached (few-shot file exists; median of {args.repeats})", median))

    print(f"\nImageNet layout, {args.classes} classes, {total} images "
          f"({args.train_per_class} train + {args.val_per_class} val per class), {args.shots} shots\n")
    print("| run | data ready s | held-out val s | process wall s | imports s | peak RSS MB (after imports) |")
    print("|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['data_ready_s']:.2f} | {r['heldout_val_s']:.3f} | {r['process_s']:.2f} | "
              f"{r['imports_s']:.2f} | {r['peak_rss_mb']:.0f} ({r['rss_after_imports_mb']:.0f}) |")
    print(f"\ntrain {int(median['train'])}, test {int(median['test'])}, held-out val {int(median['heldout_val'])}")


if __name__ == "__main__":
    main()
