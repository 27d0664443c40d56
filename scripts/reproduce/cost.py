"""The grid's image-encoder cost before it runs: views to encode with the cache, and what the original codes run.

What is counted and how: docs/grid.md, "The cost model".

    python -m scripts.reproduce.cost --throughput 2500          # the paper grid, RN50
    python -m scripts.reproduce.grid --dry-run                  # prints the same summary after the run list
"""
import hashlib
import json
import logging
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(REPO_ROOT, "benchmarks", "results", "encoder_limit.json")

# DATASET.NAME -> (classes, test images) of the published few-shot split files (split_zhou_*.json).
DATASET_SIZES: Dict[str, Tuple[int, int]] = {
    "ImageNet": (1000, 50000), "Caltech101": (100, 2465), "OxfordPets": (37, 3669), "StanfordCars": (196, 8041),
    "OxfordFlowers": (102, 2463), "Food101": (101, 30300), "FGVCAircraft": (100, 3333), "SUN397": (397, 19850),
    "DescribableTextures": (47, 1692), "EuroSAT": (10, 8100), "UCF101": (101, 3783),
    "ImageNetV2": (1000, 10000), "ImageNetSketch": (1000, 50889), "ImageNetA": (200, 7500), "ImageNetR": (200, 30000),
}
EMBED_DIMS = {"RN50": 1024, "RN101": 512, "RN50x4": 640, "RN50x16": 768, "RN50x64": 1024, "ViT-B/32": 512,
              "ViT-B/16": 512, "ViT-L/14": 768, "ViT-L/14@336px": 768}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _val_is_test(dataset: str) -> bool:
    """The dataset's own declaration: its val list is its test list (selection then reads a held-out train part)."""
    import datasets  # noqa: F401  (registers the datasets)
    from engine import DATASET_REGISTRY

    return dataset in DATASET_REGISTRY.registered_names() and bool(DATASET_REGISTRY.get(dataset).val_is_test)


def run_needs(cfg, eval_only: bool = False) -> Tuple[List[Tuple[tuple, int, int]], int]:
    """``([(entry id, images, views)], original encoder passes)`` of one run's merged config; ``eval_only``: a
    ``--eval-only`` run (e.g. an ImageNet model on a variant) encodes its test set only."""
    import trainers
    from datasets.splits import fewshot_val_per_class
    from engine import build_transform
    from trainers.backbone import PreProjectionEncoder

    name, ds = cfg.TRAINER.NAME, cfg.DATASET.NAME
    if ds not in DATASET_SIZES:
        raise ValueError(f"No image counts for dataset {ds}; add it to DATASET_SIZES")
    classes, n_test = DATASET_SIZES[ds]
    shots, seed, backbone = int(cfg.DATASET.NUM_SHOTS), max(int(cfg.SEED), 0), cfg.MODEL.BACKBONE.NAME
    epochs = max(1, int(cfg.OPTIM.MAX_EPOCH))
    spec = trainers.method_spec(name)
    request = spec.cache
    if "image" in spec.adapted_encoders:  # encodes every image at every step, as its original does:
        return [], 0                      # neither side of the cache comparison
    if request.image_features == "pre_projection":  # other features of the same images: entries of their own
        backbone = PreProjectionEncoder.name_for(backbone)
    subset = str(cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")).lower()
    if subset != "all":  # base-to-novel: the first ceil(n/2) classes, or the rest; test images in proportion
        kept = math.ceil(classes / 2) if subset == "base" else classes - math.ceil(classes / 2)
        classes, n_test = kept, round(n_test * kept / classes)
        ds = f"{ds} ({subset})"
    n_train, n_val = classes * shots, classes * fewshot_val_per_class(shots)
    test_tfm = _sha(repr(build_transform(cfg, is_train=False)))
    needs = [(("test", backbone, ds, test_tfm), n_test, 1)]
    original = n_test
    if eval_only:
        return needs, original
    if spec.selects_on_val and cfg.DATASET.get("TRACK", "fewshot_val") != "valfree":
        items = ("heldout", shots, seed) if _val_is_test(cfg.DATASET.NAME) else ("val", shots, seed)
        needs.append((("val", backbone, ds, test_tfm, items), n_val, 1))
        original += n_val
    if request.keys is not None:  # key views: their own augmentation, count and seed stream
        keys = request.keys
        views = keys.views(cfg.TRAINER[spec.config_node])
        tfm = _sha(repr(build_transform(keys.input_config(cfg), is_train=True)))
        needs.append((("train", backbone, ds, tfm, shots, keys.seed(seed)), n_train, views))
        original += views * n_train
    views = request.train_view_count(int(cfg.FEATURE_CACHE.NUM_VIEWS), epochs)
    if request.train_views == "plain":
        needs.append((("train", backbone, ds, test_tfm, shots, "plain"), n_train, 1))
        original += (1 if spec.training_free else epochs) * n_train  # the original encodes them once per fit/epoch
    elif request.train_views != "none" and not spec.training_free:
        tfm = _sha(repr(build_transform(cfg, is_train=True)))
        needs.append((("train", backbone, ds, tfm, shots, seed), n_train, views))
        original += (request.pool or epochs) * n_train  # the original encodes every training image in every epoch
    return needs, original


def cached_views(cache_dir: str) -> Dict[tuple, int]:
    """Views already held, by the same entry ids as ``run_needs`` (read from each entry's description)."""
    from features import list_entries

    held: Dict[tuple, int] = {}
    for e in list_entries(cache_dir) if cache_dir and os.path.isdir(cache_dir) else []:
        d = e["describe"]
        if not d:
            continue
        # the key's backbone names pre-projection entries apart (the description's is the run's backbone)
        tfm, ds, bb = d.get("transform"), d.get("dataset"), e["key"].get("backbone") or d.get("backbone")
        split = d.get("split")
        if split == "test" or (split == "val" and _val_is_test(ds) and e["key"].get("num_items") ==
                               DATASET_SIZES.get(ds, (0, -1))[1]):
            eid = ("test", bb, ds, tfm)
        elif split == "val":
            eid = ("val", bb, ds, tfm, ("heldout" if _val_is_test(ds) else "val", d.get("shots"), d.get("seed")))
        else:
            plain = e["key"].get("kind") == "plain"
            eid = ("train", bb, ds, tfm, d.get("shots"), "plain" if plain else d.get("seed"))
        held[eid] = max(held.get(eid, 0), e["views"])
    return held


def grid_cost(cfgs: Sequence, cache_dir: str = "", eval_only: Sequence[bool] = ()) -> Dict:
    """Encoder passes (image views) of a set of runs: with the cache, still to encode, and the original's."""
    entries: Dict[tuple, Tuple[int, int]] = {}  # entry id -> (images, most views any run asks)
    original = 0
    for cfg, ev in zip(cfgs, list(eval_only) or [False] * len(cfgs)):
        needs, orig = run_needs(cfg, ev)
        original += orig
        for eid, n, v in needs:
            entries[eid] = (n, max(entries.get(eid, (n, 0))[1], v))
    held = cached_views(cache_dir)
    todo = sum(n * max(0, v - held.get(eid, 0)) for eid, (n, v) in entries.items())
    return {"runs": len(cfgs), "entries": len(entries), "cached_total_views": sum(n * v for n, v in entries.values()),
            "to_encode_views": todo, "original_views": original}


def measured_throughput(backbone: str, path: str = RESULTS) -> Optional[Tuple[float, str]]:
    """(views/s, where measured) from ``benchmarks/encoder_limit.py``'s results, best device first."""
    try:
        with open(path) as f:
            rows = [r for r in json.load(f) if r.get("arch") == backbone]
    except (OSError, ValueError):
        return None
    if not rows:
        return None
    r = min(rows, key=lambda r: r.get("device_type") != "cuda")
    return float(r["extraction_views_per_s"]), f"{r['arch']} on {r['device']} (benchmarks/encoder_limit.py)"


def cost_summary(cells, cost: Optional[Dict], backbone: str, throughput: Optional[float] = None) -> str:
    if not cells:
        return "No runs planned."
    if cost is None:
        return "Every planned run is finished: nothing to encode."
    dim = EMBED_DIMS.get(backbone, 1024)
    lines = [
        f"Image-encoder cost of {cost['runs']} run(s), {backbone}:",
        f"  with the cache: {cost['cached_total_views']:,} views in {cost['entries']} entries "
        f"({cost['cached_total_views'] * dim * 2 / 2**30:.1f} GB fp16); still to encode: {cost['to_encode_views']:,}",
        f"  the original codes: {cost['original_views']:,} encoder passes "
        f"({cost['original_views'] / max(cost['cached_total_views'], 1):.1f}x the cache's)",
    ]
    source = "given"
    if throughput is None:
        throughput, source = measured_throughput(backbone) or (None, "")
    if throughput:
        lines.append(f"  projected at {throughput:,.0f} views/s ({source}): to encode "
                     f"{cost['to_encode_views'] / throughput / 3600:.2f} h; the original's passes "
                     f"{cost['original_views'] / throughput / 3600:.2f} h (image encoder only)")
    else:
        lines.append("  no measured throughput for this backbone: run benchmarks/encoder_limit.py or pass --throughput")
    return "\n".join(lines)


def cell_configs(cells) -> List:
    """Merged configs of grid cells (``bookkeeping.config.parse`` on each cell's arguments; no data read)."""
    from bookkeeping.config import parse

    return [parse(list(c.argv))[1] for c in cells]


def encoder_cost(cells, cache_dir: str) -> Optional[Dict]:
    """``grid_cost`` of the unfinished ``cells`` (None when every one has finished)."""
    todo = [c for c in cells if not c.finished]
    return grid_cost(cell_configs(todo), cache_dir, [bool(c.source_dir) for c in todo]) if todo else None


def main(argv: Optional[Sequence[str]] = None) -> None:
    from scripts.reproduce.grid import build_parser, plan_from_args

    p = build_parser()
    p.description = "The grid's image-encoder cost (same options as the grid)"
    p.add_argument("--throughput", type=float, default=None, help="views/s (default: the benchmark's measurement)")
    args = p.parse_args(argv)
    req, _, cells, _ = plan_from_args(args, [])
    print(cost_summary(cells, encoder_cost(cells, req.cache_dir), req.backbone, args.throughput))


if __name__ == "__main__":
    main()
