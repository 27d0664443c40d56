"""The embedded default: every method on scikit-learn's handwritten digits, through ``train.py --reuse``.

The digits (1,797 real 8x8 scans) are written in the Caltech101 layout, so the real reader runs. What it uses,
reuses and writes, and its options: ``scripts/demo.sh``.
"""
import argparse
import json
import logging
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

logger = logging.getLogger("demo")

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Run with their recipe's config file and OVERRIDES; a method whose trainer or config is absent is skipped.
METHODS = ("ZeroshotCLIP", "TaskRes", "LinearProbeCLIP", "CLIP_Adapter", "TipAdapter", "TipAdapterF", "CoOp")
OVERRIDES = {"CoOp": ["OPTIM.MAX_EPOCH", "10"]}


def write_digits_tree(root: str, image_size: int = 64) -> str:
    """Write the digits as ``root/caltech-101`` (class folders, PNG images, a 50/20/30 split file)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    ddir = os.path.join(root, "caltech-101")
    split_path = os.path.join(ddir, "split_zhou_Caltech101.json")
    if os.path.isfile(split_path):
        return root
    digits = load_digits()
    split = {"train": [], "val": [], "test": []}
    for label, name in enumerate(DIGIT_NAMES):
        idx = np.flatnonzero(digits.target == label)
        os.makedirs(os.path.join(ddir, "101_ObjectCategories", name), exist_ok=True)
        n_train, n_val = round(0.5 * len(idx)), round(0.2 * len(idx))
        for k, i in enumerate(idx):
            rel = f"{name}/image_{k:04d}.png"
            pixels = (255 - digits.images[i] * (255 / 16)).astype(np.uint8)  # dark ink on white paper
            img = Image.fromarray(pixels).resize((image_size, image_size), Image.BICUBIC).convert("RGB")
            img.save(os.path.join(ddir, "101_ObjectCategories", rel))
            part = "train" if k < n_train else "val" if k < n_train + n_val else "test"
            split[part].append([rel, label, name])
    with open(split_path, "w") as f:
        json.dump(split, f)
    logger.info("Digits written to %s (%d train / %d val / %d test)", ddir, *(len(split[s]) for s in split))
    return root


def pick_backbone(name: str, offline: bool, output: str):
    """Real weights when available; else a tiny random CLIP (and a notice). Returns (backbone, input size)."""
    from trainers.backbone import OPENAI_MODELS, BackboneError, fetch_openai_weights
    from trainers.random_clip import write_random_clip

    if not offline and name in OPENAI_MODELS:
        try:
            fetch_openai_weights(name, os.path.expanduser(os.environ.get("CLIP_WEIGHTS_DIR", "~/.cache/clip")))
            return name, 224
        except BackboneError as err:
            logger.warning("%s\n-> Falling back to a tiny random CLIP (offline mode).", err)
    elif not offline:
        return name, 224
    logger.warning(RANDOM_NOTICE)
    path = os.path.join(output, "tiny-random-clip.pt")
    if not os.path.isfile(path):  # the same file for every demo: its runs stay reusable
        write_random_clip(path, kind="vit", image_size=32)
    return path, 32


RANDOM_NOTICE = ("NOTICE: offline demo with a tiny RANDOM CLIP: these accuracies only show that the pipeline "
                 "runs; they say nothing about the methods.")


def save_plot(rows, title: str, path: str) -> str:
    """A bar chart of accuracy per method (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * max(len(rows), 3) + 1, 3.5))
    bars = ax.bar([r[0] for r in rows], [r[1] for r in rows], color="tab:blue")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description="Run every method on the digits demo dataset")
    p.add_argument("--offline", action="store_true", help="use a tiny random CLIP instead of real weights")
    p.add_argument("--output", default=os.path.join(REPO, "demo_output"))
    p.add_argument("--backbone", default="RN50")
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--views", type=int, default=2,
                   help="augmented views per training image (the benchmarks use 10; 2 keeps the demo to minutes)")
    p.add_argument("--methods", nargs="+", help="subset of trainers to run (default: all available)")
    p.add_argument("--input-size", type=int, default=None,
                   help="image side (default: 224 for real CLIP weights, 32 for the tiny random CLIP)")
    args = p.parse_args(argv)
    import train
    import trainers
    from engine import TRAINER_REGISTRY, setup_logger
    from tools.names import backbone_tag

    setup_logger(None)

    output = os.path.abspath(args.output)
    data = write_digits_tree(os.path.join(output, "data"))
    backbone, size = pick_backbone(args.backbone, args.offline, output)
    size = args.input_size or size
    random_weights = backbone.endswith("tiny-random-clip.pt")
    rows = []
    for trainer in METHODS:
        if args.methods and trainer not in args.methods:
            continue
        spec = trainers.method_spec(trainer) if trainer in TRAINER_REGISTRY.registered_names() else None
        if spec is None or not os.path.isfile(os.path.join(REPO, spec.recipe_config)):
            logger.info("Skipping %s (not available in this checkout)", trainer)
            continue
        out = os.path.join(output, "runs", trainer, f"{backbone_tag(backbone)}_{args.shots}shots", f"seed{args.seed}")
        start = time.time()
        result = train.main([
            "--root", data, "--output-dir", out, "--seed", str(args.seed), "--trainer", trainer,
            "--config-file", os.path.join(REPO, spec.recipe_config),
            "--dataset-config-file", os.path.join(REPO, "configs/datasets/caltech101.yaml"),
            "--backbone", backbone, "--cache-dir", os.path.join(output, "feature_cache"), "--reuse",
            *OVERRIDES.get(trainer, []), "DATASET.NUM_SHOTS", str(args.shots), "INPUT.SIZE", f"({size}, {size})",
            "FEATURE_CACHE.NUM_VIEWS", str(args.views), "TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", str(args.views),
            "TRAINER.TIP_ADAPTER_F.AUGMENT_EPOCH", str(args.views), "TRAIN.PRINT_FREQ", "1000",
        ])
        if not result.get("reused"):
            logger.info("%s finished in %.1fs", trainer, time.time() - start)
        with open(os.path.join(result["output_dir"], "metrics.json")) as f:
            m = json.load(f)
        rows.append((spec.label, m["accuracy"], m.get("macro_f1") or float("nan"), m["timings"]["wall_s"]))
    title = f"Digits, {args.shots}-shot, backbone {os.path.basename(backbone)}, seed {args.seed}"
    notice = [f"**{RANDOM_NOTICE}**", ""] if random_weights else []
    lines = notice + [title, "", "| method | accuracy % | macro-F1 % | wall s |", "|---|---|---|---|"]
    lines += [f"| {t} | {a:.1f} | {f1:.1f} | {w:.1f} |" for t, a, f1, w in rows]
    plot = save_plot(rows, title + (" (RANDOM weights)" if random_weights else ""),
                     os.path.join(output, "results.png")) if rows else None
    if plot:
        lines += ["", "![accuracy per method](results.png)"]
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(output, "results.md"), "w") as f:
        f.write(table + "\n")
    logger.info("Table: %s; plot: %s", os.path.join(output, "results.md"), plot)
    return rows


if __name__ == "__main__":
    main()
