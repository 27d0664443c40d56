"""Feature-cache benchmark: TaskRes (and the other methods) with the cache off and on, on this device.

Every run is a fresh ``train.py`` process on a random-weight CLIP (real weights cannot change the
timing) and a dataset tree written here. Reported per run: feature extraction time, time per epoch,
whole-process wall time, peak memory, cache size on disk, accuracy.

    python benchmarks/feature_cache.py reference            # the issue's CPU reference (digits, ViT w384/L6/p8 @ 64 px,
                                                            # 16 shots, 200 epochs): cache off (1 seed) vs on (3 seeds)
    python benchmarks/feature_cache.py scaling --arch tiny  # cached TaskRes total time vs classes and vs shots
    python benchmarks/feature_cache.py accuracy             # learnable synthetic data, tiny CLIP: accuracy cache on vs
                                                            # off over 3 seeds (random CLIP features of real images
                                                            # carry too little signal for TaskRes to learn from)
    python benchmarks/feature_cache.py methods --epochs 20  # every method, cache off vs on
    python benchmarks/feature_cache.py gpu --arch RN50      # GPU: RN50 @ 224 px, synthetic 1000 classes x 16 shots

Add ``--out FILE.md`` to save the markdown table. Timings include interpreter start-up and imports.
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
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

logger = logging.getLogger("benchmark")

TASKRES_CONFIG = os.path.join(REPO, "configs/trainers/TaskRes/rn50.yaml")
METHOD_CONFIGS = {
    "TaskRes": TASKRES_CONFIG, "ZeroshotCLIP": TASKRES_CONFIG,
    "LinearProbeCLIP": "configs/trainers/LinearProbeCLIP/rn50.yaml", "CLIP_Adapter": "configs/trainers/CLIP_Adapter/rn50.yaml",
    "TipAdapter": "configs/trainers/TipAdapter/rn50.yaml", "TipAdapterF": "configs/trainers/TipAdapterF/rn50.yaml",
    "CoOp": "configs/trainers/CoOp/rn50.yaml",
}
ARCH_SIZES = {"tiny": 32, "vit-small": 64, "RN50": 224, "ViT-B/16": 224}
VIEWS = 10  # FEATURE_CACHE.NUM_VIEWS of the cached runs (--views; 0 = the paper's one view per epoch)


def dir_size_mb(path: str) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files if f.endswith(".pt"))
    return total / 2**20


def write_clip(arch: str, workdir: str) -> str:
    from trainers.random_clip import write_random_clip

    path = os.path.join(workdir, f"random-{arch.replace('/', '-')}.pt")
    if not os.path.isfile(path):
        if arch == "tiny":
            write_random_clip(path, kind="vit", image_size=32)
        elif arch == "vit-small":
            write_random_clip(path, kind="vit-small", image_size=64)
        else:
            write_random_clip(path, kind=arch)
    return path


def run(data: str, clip: str, out: str, cache: Optional[str], trainer: str = "TaskRes", shots: int = 16,
        epochs: int = 200, seed: int = 1, size: int = 64, dataset: str = "caltech101", extra: List[str] = ()) -> Dict:
    """One fresh process; returns its measurements."""
    argv = ["--root", data, "--output-dir", out, "--seed", str(seed), "--trainer", trainer,
            "--config-file", os.path.join(REPO, METHOD_CONFIGS[trainer]),
            "--dataset-config-file", os.path.join(REPO, f"configs/datasets/{dataset}.yaml"), "--backbone", clip]
    argv += ["--cache-dir", cache] if cache else ["--no-cache"]
    argv += [*extra, "DATASET.NUM_SHOTS", str(shots), "OPTIM.MAX_EPOCH", str(epochs), "INPUT.SIZE", f"({size}, {size})",
             "DATALOADER.NUM_WORKERS", str(min(4, os.cpu_count() or 1)), "TRAIN.PRINT_FREQ", "100000",
             "FEATURE_CACHE.NUM_VIEWS", str(VIEWS)]
    result_path = out + ".result.json"
    start = time.time()
    subprocess.run([sys.executable, os.path.join(REPO, "benchmarks/run_one.py"), result_path, "--", *argv],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    with open(result_path) as f:
        res = json.load(f)
    t = res["metrics"]["timings"]
    return {
        "trainer": trainer, "cache": bool(cache), "seed": seed, "shots": shots, "epochs": epochs,
        "extract_s": t.get("extract_s", 0.0), "epoch_s": t.get("epochs_s", 0.0) / max(1, t.get("epochs_run", 0) or 1),
        "wall_s": wall, "peak_rss_mb": res["peak_rss_mb"], "cuda_peak_mb": res["cuda_peak_mb"],
        "cache_mb": dir_size_mb(cache) if cache else 0.0, "accuracy": res["metrics"]["accuracy"],
    }


def table(rows: List[Dict], title: str) -> str:
    cols = ["trainer", "cache", "seed", "shots", "epochs", "extract_s", "epoch_s", "wall_s", "peak_rss_mb", "cache_mb",
            "accuracy"]
    if any(r.get("classes") for r in rows):
        cols.insert(3, "classes")
    if any(r.get("cuda_peak_mb") for r in rows):
        cols.insert(-2, "cuda_peak_mb")
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) and abs(v) < 1 else f"{v:.1f}" if isinstance(v, float) else str(v)
    lines = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def digits_root(workdir: str) -> str:
    from scripts.demo import write_digits_tree

    return write_digits_tree(os.path.join(workdir, "digits"))


def reference(args, workdir: str) -> str:
    data, clip = digits_root(workdir), write_clip(args.arch, workdir)
    size = ARCH_SIZES[args.arch]
    cache = os.path.join(workdir, "cache")
    rows = [run(data, clip, os.path.join(workdir, f"on-s{s}"), cache, seed=s, epochs=args.epochs, size=size)
            for s in args.seeds]
    rows.append(run(data, clip, os.path.join(workdir, "on-alpha1"), cache, seed=args.seeds[0], epochs=args.epochs,
                    size=size, extra=["TRAINER.TaskRes.RESIDUAL_SCALE", "1.0"]))
    rows[-1]["trainer"] = "TaskRes (alpha 1.0, same cache)"
    rows += [run(data, clip, os.path.join(workdir, f"off-s{s}"), None, seed=s, epochs=args.epochs, size=size)
             for s in args.seeds[: args.uncached_seeds]]
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
    return table(rows, f"Reference: TaskRes, digits, 16 shots, {args.epochs} epochs, random {args.arch} CLIP @ {size} px") \
        + "\n\n" + "\n".join(f"- {s}" for s in summary)


def accuracy(args, workdir: str) -> str:
    from tests.fixtures.synthetic_datasets import write_dataset

    clip, size = write_clip(args.arch, workdir), ARCH_SIZES[args.arch]
    classes = args.classes[0]
    data = os.path.join(workdir, f"data-{classes}")
    if not os.path.isdir(data):
        write_dataset("Caltech101", data, num_classes=classes, per_class=40, image_size=size)
    extra = ["OPTIM.LR", str(args.lr)]
    rows = []
    for cache in (os.path.join(workdir, "cache"), None):
        for s in args.seeds:
            rows.append(run(data, clip, os.path.join(workdir, f"{'on' if cache else 'off'}-s{s}"), cache, seed=s,
                            shots=min(args.shots[-1], 16), epochs=args.epochs, size=size, extra=extra))
    zs = run(data, clip, os.path.join(workdir, "zeroshot"), os.path.join(workdir, "cache"), trainer="ZeroshotCLIP",
             size=size)
    on = [r["accuracy"] for r in rows if r["cache"]]
    off = [r["accuracy"] for r in rows if not r["cache"]]

    def sd(values):
        return statistics.stdev(values) if len(values) > 1 else 0.0

    return table(rows + [zs], f"Accuracy: TaskRes, synthetic {classes} classes, lr {args.lr}, {args.epochs} epochs, "
                              f"random {args.arch} CLIP @ {size} px") + (
        f"\n\n- cache on: {statistics.mean(on):.2f} +- {sd(on):.2f}; cache off: {statistics.mean(off):.2f} +- "
        f"{sd(off):.2f} (seeds {args.seeds}); zero-shot {zs['accuracy']:.2f}")


def scaling(args, workdir: str) -> str:
    """Cached TaskRes: classes sweep at the largest shot count, shots sweep at the middle class count."""
    from tests.fixtures.synthetic_datasets import write_dataset

    clip, size = write_clip(args.arch, workdir), ARCH_SIZES[args.arch]
    shots_at = args.classes[len(args.classes) // 2]
    cells = [(c, max(args.shots)) for c in args.classes] + [(shots_at, k) for k in args.shots if k != max(args.shots)]
    rows = []
    for classes, shots in cells:
        data = os.path.join(workdir, f"data-{classes}")
        if not os.path.isdir(data):
            write_dataset("Caltech101", data, num_classes=classes, per_class=2 * max(args.shots) + 8, image_size=size)
        cache = os.path.join(workdir, f"cache-{classes}-{shots}")
        r = run(data, clip, os.path.join(workdir, f"c{classes}-k{shots}"), cache, shots=shots,
                epochs=args.epochs, size=size)
        r["classes"] = classes
        rows.append(r)
    return table(rows, f"Scaling: cached TaskRes, {args.epochs} epochs, random {args.arch} CLIP @ {size} px "
                       f"(per class: {max(args.shots) + 4} train, {round(0.2 * (2 * max(args.shots) + 8))} val, "
                       f"{2 * max(args.shots) + 8 - max(args.shots) - 4 - round(0.2 * (2 * max(args.shots) + 8))} test images)")


def methods(args, workdir: str) -> str:
    data, clip = digits_root(workdir), write_clip(args.arch, workdir)
    size = ARCH_SIZES[args.arch]
    rows = []
    for trainer in args.methods:
        if not os.path.isfile(os.path.join(REPO, METHOD_CONFIGS[trainer])):
            logger.warning("skipping %s: no config", trainer)
            continue
        for cache in (os.path.join(workdir, "cache"), None):
            rows.append(run(data, clip, os.path.join(workdir, f"{trainer}-{'on' if cache else 'off'}"), cache,
                            trainer=trainer, epochs=args.epochs, size=size))
    return table(rows, f"Every method, digits 16 shots, {args.epochs} epochs, random {args.arch} CLIP @ {size} px")


def gpu(args, workdir: str) -> str:
    from tests.fixtures.synthetic_datasets import write_dataset

    clip, size = write_clip(args.arch, workdir), ARCH_SIZES[args.arch]
    data = os.path.join(workdir, "data-gpu")
    write_dataset("ImageNet", data, num_classes=args.classes[-1], per_class=16, image_size=size)
    r = run(data, clip, os.path.join(workdir, "gpu"), os.path.join(workdir, "cache-gpu"), dataset="imagenet",
            shots=16, epochs=args.epochs, size=size, extra=["TRAINER.TaskRes.PREC", "fp16"])
    n_views = 16 * args.classes[-1] * (VIEWS or args.epochs) + 8 * args.classes[-1]
    r["classes"] = args.classes[-1]
    note = (f"- extraction: {n_views / r['extract_s']:.0f} images/s; TaskRes epoch {r['epoch_s']:.4f} s; projected 16-shot "
            f"ImageNet (16k train x {VIEWS or args.epochs} views + 50k test): "
            f"{(16000 * (VIEWS or args.epochs) + 50000) / (n_views / r['extract_s']) + 200 * r['epoch_s']:.0f} s")
    return table([r], f"GPU: {args.arch} @ {size} px, {args.classes[-1]} classes x 16 shots") + "\n\n" + note


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
    p.add_argument("--methods", nargs="+", default=list(METHOD_CONFIGS))
    p.add_argument("--views", type=int, default=10,
                   help="FEATURE_CACHE.NUM_VIEWS of cached runs (the tables in README were made with 10; 0 = paper protocol)")
    p.add_argument("--workdir", default="")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    global VIEWS
    VIEWS = args.views
    args.arch = args.arch or {"reference": "vit-small", "gpu": "RN50"}.get(args.mode, "tiny")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workdir = args.workdir or tempfile.mkdtemp(prefix="taskres-bench-")
    os.makedirs(workdir, exist_ok=True)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    text = globals()[args.mode](args, workdir)
    text = f"Device: {device}; command: python benchmarks/feature_cache.py {' '.join(argv or sys.argv[1:])}\n\n{text}\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
