"""Feature extraction against the encoder's own limit, and what it means for the paper's protocol.

What is measured and projected, and the results: docs/performance.md, "Extraction at the encoder limit".

    python benchmarks/encoder_limit.py                          # CPU: random ViT width 384 / 6 layers @ 64 px
    python benchmarks/encoder_limit.py --archs RN50 ViT-B/16    # CUDA (when present): @ 224 px, fp16
    python benchmarks/encoder_limit.py --coop                   # + CoOp's text side, full 77 tokens vs truncated

Results are appended to ``benchmarks/results/encoder_limit.json`` (read by the grid's ``--dry-run``).
"""
import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import REPO, median_seconds, random_clip, sync  # noqa: E402
from bookkeeping.recipes import PAPER_METHODS  # noqa: E402
from engine import Datum, build_transform, get_cfg_default  # noqa: E402
from features import default_batch_size, default_workers, extract_features  # noqa: E402
from scripts.reproduce.cost import cell_configs, grid_cost  # noqa: E402
from scripts.reproduce.planning import GridRequest, plan_runs  # noqa: E402
from tests.fixtures.synthetic_datasets import make_image  # noqa: E402
from trainers.backbone import TextTower, load_backbone  # noqa: E402
from trainers.coop import PromptLearner  # noqa: E402

logger = logging.getLogger("benchmark")

SIZES = {"vit-small": 64, "RN50": 224, "RN101": 224, "ViT-B/32": 224, "ViT-B/16": 224}
PAPER_IMAGENET_VIEWS = 16000 * 200 + 50000


def write_images(root: str, n: int, side: int) -> List:
    """``n`` JPEG files of ``side`` px (about an ImageNet photo's size), as dataset items."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        path = os.path.join(root, f"img_{i:05d}.jpg")
        if not os.path.isfile(path):
            make_image(i % 50, rng, size=side).save(path, quality=90)
        items.append(Datum(impath=path, label=i % 50, classname=str(i % 50)))
    return items


def encoder_limit(clip, batch: int, seconds: float) -> float:
    """Views/s of ``encode_image`` on a ready, normalised batch on the device (the same call extraction makes)."""
    x = torch.randn(batch, 3, clip.image_size, clip.image_size, device=clip.device)
    if clip.device.type == "cuda":
        clip.model.visual.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    for _ in range(2):
        clip.encode_image(x)
    sync(clip.device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        clip.encode_image(x)
        n += 1
    sync(clip.device)
    rate = n * batch / (time.perf_counter() - start)
    if clip.device.type == "cuda":
        clip.model.visual.to(memory_format=torch.contiguous_format)
    return rate


def extraction(clip, items, views: int, batch: int, workers: int) -> float:
    """Views/s of the real extraction over ``items`` x ``views`` (train transform: random resized crop + flip)."""
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (clip.image_size, clip.image_size)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.PIXEL_MEAN = [0.48145466, 0.4578275, 0.40821073]
    cfg.INPUT.PIXEL_STD = [0.26862954, 0.26130258, 0.27577711]
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    tfm = build_transform(cfg, is_train=True)
    extract_features(clip, items[: max(2, len(items) // 10)], tfm, 2, 1, batch, workers, "warm-up")
    seconds = median_seconds(lambda: extract_features(clip, items, tfm, views, 1, batch, workers, "extraction"),
                             clip.device)
    return len(items) * views / seconds


def measure(clip, items, views: int, batch: int, workers: int, seconds: float) -> Dict:
    """The encoder limit, the extraction rate over ``items`` x ``views`` at ``clip.image_size`` px, their ratio."""
    limit = encoder_limit(clip, batch, seconds)
    if clip.device.type == "cuda":  # the extraction's own peak (gpu_check reports it)
        torch.cuda.reset_peak_memory_stats()
    rate = extraction(clip, items, views, batch, workers)
    return {"input_px": clip.image_size, "precision": clip.precision, "batch": batch, "workers": workers,
            "images": len(items), "views": views, "encoder_limit_views_per_s": limit,
            "extraction_views_per_s": rate, "ratio": rate / limit}


def coop_text(clip, classes: int, steps: int) -> Dict:
    """CoOp's text side, forward + backward of all class prompts: full 77 tokens vs truncated to the longest EOT."""
    rnd = random.Random(0)
    words = ["red", "great", "crested", "northern", "spotted", "mountain", "sea", "long", "tailed", "grey",
             "horned", "king", "wild", "little", "american", "common", "house", "black"]
    names = [" ".join(rnd.choice(words) for _ in range(rnd.randint(1, 4))) + f" {i}" for i in range(classes)]
    tower = TextTower(clip.model)
    out = {"classes": classes}
    for label, truncate, share in (("full", False, False), ("truncated_only", True, False), ("truncated", True, True)):
        learner = PromptLearner(tower, clip.tokenize, names, 16, "", False, "end", clip.logit_scale,
                                truncate=truncate).to(clip.device)
        learner.share_prefix = learner.share_prefix and share
        feats = torch.randn(32, clip.embed_dim, device=clip.device)

        def step(learner=learner, feats=feats):
            learner(feats).logsumexp(1).sum().backward()

        step()  # warm-up
        out[f"tokens_{label}"] = int(learner.tokens.shape[1])
        out[f"step_s_{label}"] = median_seconds(step, clip.device, steps)
    out["ratio"] = out["step_s_full"] / out["step_s_truncated"]
    out["ratio_truncation_only"] = out["step_s_full"] / out["step_s_truncated_only"]
    return out


def grid_views() -> Dict:
    datasets = sorted(f[:-5] for f in os.listdir(os.path.join(REPO, "configs", "datasets"))
                      if f.endswith(".yaml") and not f.startswith("imagenet_") and f != "imagenetv2.yaml")
    cells = plan_runs(GridRequest(PAPER_METHODS, datasets, (1, 2, 4, 8, 16), (1, 2, 3), "RN50", "", tempfile.mkdtemp()))
    return grid_cost(cell_configs(cells))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=None, help="default: vit-small on CPU, RN50 and ViT-B/16 on CUDA")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--images", type=int, default=None, help="files to extract (default: 40 on CPU, 2000 on CUDA)")
    p.add_argument("--views", type=int, default=None, help="views per image (default: 16 on CPU, 10 on CUDA)")
    p.add_argument("--image-side", type=int, default=384, help="side of the JPEG files (ImageNet photos: ~400 px)")
    p.add_argument("--batch-size", type=int, default=0, help="views per encoder call (0: the cache's default)")
    p.add_argument("--workers", type=int, default=-1, help="loader workers (-1: the cache's default)")
    p.add_argument("--seconds", type=float, default=8.0, help="time to measure the encoder limit")
    p.add_argument("--coop", action="store_true", help="also time CoOp's text side (full vs truncated context)")
    p.add_argument("--coop-classes", type=int, default=100)
    p.add_argument("--coop-steps", type=int, default=3)
    p.add_argument("--coop-only", action="store_true", help="only the CoOp text-side timing")
    p.add_argument("--workdir", default="")
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "encoder_limit.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    precision = "fp16" if cuda else "fp32"
    archs = [] if args.coop_only else args.archs or (["RN50", "ViT-B/16"] if cuda else ["vit-small"])
    n_images = args.images or (2000 if cuda else 40)
    views = args.views or (10 if cuda else 16)
    batch = args.batch_size or default_batch_size(device)
    workers = args.workers if args.workers >= 0 else default_workers(device)
    workdir = args.workdir or tempfile.mkdtemp(prefix="encoder-limit-")
    items = write_images(os.path.join(workdir, "images"), n_images, args.image_side) if archs else []
    name = torch.cuda.get_device_name(0) if cuda else f"CPU ({len(os.sched_getaffinity(0))} cores)"
    grid = grid_views() if archs else {}
    rows = []
    for arch in archs:
        clip = load_backbone(random_clip(workdir, arch, SIZES[arch]), device, precision, input_size=SIZES[arch])
        row = {"arch": arch, "device": name, "device_type": device.type,
               **measure(clip, items, views, batch, workers, args.seconds)}
        limit, rate = row["encoder_limit_views_per_s"], row["extraction_views_per_s"]
        row.update(imagenet_16shot_paper_h=PAPER_IMAGENET_VIEWS / rate / 3600,
                   grid_views_cached=grid["cached_total_views"], grid_views_original=grid["original_views"],
                   grid_cached_h=grid["cached_total_views"] / rate / 3600,
                   grid_original_h=grid["original_views"] / rate / 3600,
                   torch=torch.__version__, date=time.strftime("%Y-%m-%d %H:%M"))
        rows.append(row)
        logger.info("%s on %s @ %d px (%s, batch %d, %d workers): encoder limit %.1f views/s; extraction %.1f "
                    "views/s from %d JPEG files x %d views = %.1f%% of the limit", arch, name, SIZES[arch],
                    clip.precision, batch, workers, limit, rate, n_images, views, 100 * rate / limit)
        logger.info("  projected at that speed: 16-shot ImageNet, paper protocol (%s views): %.2f h; the RN50 grid "
                    "with the cache (%s views): %.1f h; the original codes' passes (%s): %.1f h",
                    f"{PAPER_IMAGENET_VIEWS:,}", row["imagenet_16shot_paper_h"], f"{grid['cached_total_views']:,}",
                    row["grid_cached_h"], f"{grid['original_views']:,}", row["grid_original_h"])
    if args.coop or args.coop_only:  # RN50's text tower (width 512, 12 layers), whatever the image archs
        clip = load_backbone(random_clip(workdir, "RN50", SIZES["RN50"]), device, precision, input_size=SIZES["RN50"])
        c = coop_text(clip, args.coop_classes, steps=args.coop_steps)
        c.update(arch="RN50 text tower", device=name, device_type=device.type, precision=clip.precision)
        rows.append({"arch": "coop-text-RN50", "device_type": device.type, "coop_text": c})
        logger.info("CoOp text side (RN50 tower, %s), %d classes, forward+backward of every prompt: %d tokens %.3f s; "
                    "%d tokens %.3f s (%.2fx); %d tokens with the shared prefix once %.3f s: %.2fx faster",
                    clip.precision, c["classes"], c["tokens_full"], c["step_s_full"], c["tokens_truncated_only"],
                    c["step_s_truncated_only"], c["ratio_truncation_only"], c["tokens_truncated"],
                    c["step_s_truncated"], c["ratio"])
    if args.out:  # replaces the earlier rows of the same (arch, device type)
        out = Path(args.out)
        old = json.loads(out.read_text()) if out.is_file() else []
        new = {(r["arch"], r["device_type"]) for r in rows}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([r for r in old if (r["arch"], r["device_type"]) not in new] + rows, indent=1))
        logger.info("Results in %s", args.out)


if __name__ == "__main__":
    main()
