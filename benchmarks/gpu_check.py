"""One command for a lent GPU: every method trains, evaluates from its checkpoint and resumes after Ctrl-C on
a synthetic ImageNet, and the feature extraction, memory and paper-protocol cost are measured.

No data and no downloaded weights. The steps, their budgets and where results go: docs/gpu.md.

    python benchmarks/gpu_check.py --device cuda            # on an H100/H200: under 8 minutes
    python benchmarks/gpu_check.py --device cpu --tiny      # the same steps, tiny sizes (tests/test_gpu_check.py)
"""
import argparse
import gc
import glob
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train  # noqa: E402  (the repo root must be on sys.path first)
import trainers  # noqa: E402
from benchmarks.common import REPO, markdown_table, random_clip  # noqa: E402
from benchmarks.encoder_limit import PAPER_IMAGENET_VIEWS, measure  # noqa: E402
from engine import Datum  # noqa: E402
from features import default_batch_size, default_workers  # noqa: E402
from scripts.check_dassl import accuracy, interrupt_once_saved, same_run  # noqa: E402
from tests.fixtures.synthetic_datasets import _save_image, write_dataset  # noqa: E402
from trainers.backbone import load_backbone  # noqa: E402

logger = logging.getLogger("gpu_check")

GIB = 1024 ** 3
CARD_24GB = 24 * 1000 ** 3  # a "24 GB" card (RTX 3090/4090, A10, L4), less nothing: compared with reserved memory
PAPER_EPOCHS = 200  # TaskRes's ImageNet recipe: one augmented view per image per epoch


class Sizes:
    """Everything that differs between the GPU run and the tiny CPU run (the code path does not)."""

    def __init__(self, tiny: bool, cuda: bool):
        self.classes, self.shots = (4, 2) if tiny else (100, 16)
        self.image_side = 48 if tiny else 400
        self.input_px = 32 if tiny else 224
        self.archs = {"RN50": "resnet", "ViT-B/16": "vit"} if tiny else {"RN50": "RN50", "ViT-B/16": "ViT-B/16"}
        self.epochs = 1 if tiny else 2
        self.resume_epochs = 60 if tiny else 200  # long enough to be interrupted mid-run
        self.encoder_seconds = 0.5 if tiny else 5.0
        self.encoder_views = 2 if tiny else 5
        self.workers = ["DATALOADER.NUM_WORKERS", "0"] if tiny else []  # GPU: the recipe's
        # Methods whose recipe would take minutes even for one epoch: fewer shots / iterations, same code.
        self.method_opts = {
            "CoCoOp": ["DATASET.NUM_SHOTS", "1" if tiny else "2"],  # batch 1, the text tower per image
            "CLIP_LoRA": ["TRAINER.CLIP_LORA.ITERS_PER_SHOT", "1" if tiny else "2"],  # recipe: 500 per shot
        }
        self.device_opts = [] if cuda else ["USE_CUDA", "False"]  # train.py: CUDA when available, unless False
        # seconds per step (the whole run's budget is --budget-s)
        self.budgets = {"data": 120, "backbone": 60, "encoder": 60, "method": 60, "eval": 45, "resume": 120}

    def shots_of(self, method: str) -> int:
        opts = self.method_opts.get(method, [])
        return int(opts[opts.index("DATASET.NUM_SHOTS") + 1]) if "DATASET.NUM_SHOTS" in opts else self.shots


class StepTimeout(BaseException):
    """A step ran past its budget (BaseException: no ``except Exception`` in the run may swallow it)."""


def one_line(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return str(err.code)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}"[:300]


class Report:
    """The results so far, written as JSON and Markdown after every step."""

    def __init__(self, path_stem: str, meta: dict, total_budget: float):
        self.stem = path_stem
        self.data = dict(meta, steps=[], encoder=[], methods=[], resume=None, projection=None)
        self.start = time.time()
        self.total_budget = total_budget

    def left(self) -> float:
        return self.total_budget - (time.time() - self.start)

    def step(self, name: str, budget: float, fn, *args):
        """Run ``fn(*args)`` within ``min(budget, time left)``; record ok / error / skipped; return its value."""
        seconds = min(budget, self.left())
        row = {"step": name, "budget_s": round(seconds, 1)}
        self.data["steps"].append(row)
        if seconds < 1:
            row.update(status="skipped", error="out of time (--budget-s)")
            logger.error("[skip] %s: out of time", name)
            self.write()
            return None

        def expire(signum, frame):  # SIGALRM: an in-process run cannot be killed, so the main thread raises
            raise StepTimeout(f"over its {seconds:.0f} s budget")

        start, previous = time.time(), signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            value = fn(*args)
            row["status"] = "ok"
            return value
        except (Exception, StepTimeout, SystemExit) as err:  # recorded as the step's row, and exit status 1
            row.update(status="failed", error=one_line(err))
            logger.error("[FAIL] %s: %s", name, row["error"])
            logger.debug("step %s", name, exc_info=True)
            return None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            row["seconds"] = round(time.time() - start, 2)
            self.write()

    def write(self) -> None:
        self.data["wall_s"] = round(time.time() - self.start, 1)
        os.makedirs(os.path.dirname(self.stem), exist_ok=True)
        Path(self.stem + ".json").write_text(json.dumps(self.data, indent=1))
        Path(self.stem + ".md").write_text(markdown(self.data))


def _fmt(value, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def markdown(d: dict) -> str:
    lines = [f"# GPU check: {d['device']} ({d['date']})", "",
             f"`{d['command']}`; torch {d['torch']}; {d['sizes']}; wall {d.get('wall_s')} s.", "",
             "## Encoder limit vs extraction", ""]
    lines += markdown_table(
        ["arch", "px", "precision", "batch", "workers", "encoder views/s", "extraction views/s", "ratio",
         "extraction peak GiB"],
        [[r["arch"], r["input_px"], r["precision"], r["batch"], r["workers"],
          f"{r['encoder_limit_views_per_s']:.0f}", f"{r['extraction_views_per_s']:.0f}", f"{r['ratio']:.2f}",
          _fmt(r.get("extraction_peak_allocated_gib"), ".2f")] for r in d["encoder"]])
    lines += ["", "## Methods (train, then --eval-only from the checkpoint)", "",
              "Peak memory: the whole training run (feature extraction at the cache's batch size included), "
              "in the recipe's precision and batch size; 'fits 24 GB': peak reserved < 24e9 bytes.", ""]
    lines += markdown_table(
        ["method", "arch", "recipe precision", "batch", "train s", "accuracy", "eval-only", "match",
         "peak alloc GiB", "peak reserved GiB", "fits 24 GB", "error"],
        [[r["method"], r["arch"], r.get("precision") or "-", _fmt(r.get("batch")), _fmt(r.get("train_s"), ".1f"),
          _fmt(r.get("accuracy"), ".2f"), _fmt(r.get("eval_accuracy"), ".2f"), _fmt(r.get("eval_match")),
          _fmt(r.get("peak_allocated_gib"), ".2f"), _fmt(r.get("peak_reserved_gib"), ".2f"),
          _fmt(r.get("fits_24gb")), r.get("error") or ""] for r in d["methods"]])
    if r := d.get("resume"):
        lines += ["", "## SIGINT + resume (TaskRes)", "", f"- interrupted: {r['interrupted']} ({r['signal_line']})",
                  f"- resumed run equals the uninterrupted one: {r['equal']} ({r['accuracy_resumed']} vs "
                  f"{r['accuracy_whole']})"]
    if p := d.get("projection"):
        lines += ["", "## Projection: TaskRes, 16-shot ImageNet, paper protocol", "",
                  f"{p['views']:,} views at {p['views_per_s']:.0f} views/s ({p['arch']} extraction): "
                  f"{p['extraction_h']:.2f} h of extraction; training on cached features "
                  f"{_fmt(p.get('training_h'), '.3f')} h ({p.get('training_basis') or '-'})."]
    lines += ["", "## Steps", ""] + markdown_table(
        ["step", "status", "seconds", "budget s", "error"],
        [[r["step"], r["status"], _fmt(r.get("seconds")), r["budget_s"], r.get("error") or ""]
         for r in d["steps"]])
    return "\n".join(lines) + "\n"


def write_data(root: str, sizes: Sizes) -> List:
    """The synthetic ImageNet tree (real layout, real reader); returns its training images as items. The fixture
    writes the layout with small images, then a pool of processes rewrites every file at ``image_side`` px (one
    process takes minutes for 3,000 photo-sized JPEG files)."""
    images = os.path.join(root, "imagenet", "images")
    done = os.path.join(root, "imagenet", "written")
    if not os.path.isfile(done):
        write_dataset("ImageNet", root, num_classes=sizes.classes, per_class=sizes.shots + 4, image_size=8)
        wnids = sorted(os.listdir(os.path.join(images, "train")))
        files = sorted(glob.glob(os.path.join(images, "*", "*", "*.JPEG")))
        labels = [wnids.index(os.path.basename(os.path.dirname(f))) for f in files]
        rngs = [np.random.default_rng([0, i]) for i in range(len(files))]
        context = multiprocessing.get_context("fork")  # the workers need nothing but numpy and PIL
        with context.Pool(min(16, os.cpu_count() or 1)) as pool:
            pool.starmap(_save_image, zip(files, labels, rngs, [sizes.image_side] * len(files)), chunksize=16)
        open(done, "w").close()
    wnids = sorted(os.listdir(os.path.join(images, "train")))
    return [Datum(impath=f, label=label, classname=wnid) for label, wnid in enumerate(wnids)
            for f in sorted(glob.glob(os.path.join(images, "train", wnid, "*.JPEG")))]


def measure_encoder(report: Report, arch: str, ckpt: str, items: List, device: torch.device, sizes: Sizes) -> None:
    clip = load_backbone(ckpt, device, "fp16", input_size=sizes.input_px)
    row = {"arch": arch, **measure(clip, items, sizes.encoder_views, default_batch_size(device),
                                   default_workers(device), sizes.encoder_seconds),
           "extraction_peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB if device.type == "cuda" else None}
    logger.info("%s: encoder %.0f views/s, extraction %.0f views/s (%.0f%%)", arch, row["encoder_limit_views_per_s"],
                row["extraction_views_per_s"], 100 * row["ratio"])
    report.data["encoder"].append(row)


def train_argv(method: str, root: str, ckpt: str, out: str, cache: str, sizes: Sizes, epochs: int,
               opts=()) -> List[str]:
    spec = trainers.method_spec(method)
    recipe = [str(x) for kv in spec.settings("imagenet", sizes.shots).items() for x in kv
              if kv[0] != "OPTIM.MAX_EPOCH"]
    return ["--root", root, "--output-dir", out, "--seed", "1", "--trainer", method,
            "--dataset-config-file", os.path.join(REPO, "configs", "datasets", "imagenet.yaml"),
            "--config-file", os.path.join(REPO, spec.recipe_config or "configs/trainers/TaskRes/rn50.yaml"),
            "--backbone", ckpt, "--cache-dir", cache, *recipe,
            "DATASET.NUM_SHOTS", str(sizes.shots), "OPTIM.MAX_EPOCH", str(epochs),
            "INPUT.SIZE", f"({sizes.input_px}, {sizes.input_px})", "TRAIN.PRINT_FREQ", "1000",
            *sizes.workers, *sizes.device_opts, *sizes.method_opts.get(method, []), *opts]


def train_method(row: dict, argv: List[str], out: str, device: torch.device) -> None:
    cuda = device.type == "cuda"
    if cuda:  # the run's own peak: what earlier runs left is freed first
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.time()
    results = train.main(argv)
    row.update(train_s=round(time.time() - start, 2), accuracy=results.get("accuracy"))
    cfg = yaml.safe_load(Path(out, "config.yaml").read_text())  # the precision and batch size the run used
    node = cfg.get("TRAINER", {}).get(trainers.method_spec(row["method"]).config_node, {}) or {}
    row.update(precision=node.get("PREC"), batch=cfg["DATALOADER"]["TRAIN_X"]["BATCH_SIZE"])
    if cuda:
        reserved = torch.cuda.max_memory_reserved()
        row.update(peak_allocated_gib=torch.cuda.max_memory_allocated() / GIB, peak_reserved_gib=reserved / GIB,
                   fits_24gb=reserved < CARD_24GB)
    row["error"] = None
    timings = json.loads(Path(out, "metrics.json").read_text()).get("timings", {})
    if timings.get("epochs_run"):
        row["epoch_s"] = timings["epochs_s"] / timings["epochs_run"]


def eval_method(row: dict, argv: List[str], out: str) -> None:
    if not glob.glob(os.path.join(out, "*", "model*.pth.tar*")):
        row["eval_match"] = "n/a (nothing saved)"
        return
    argv = list(argv)
    argv[argv.index("--output-dir") + 1] = out + "-eval"
    # No --load-epoch: the model the run reported (its last epoch, or its val-selected model-best).
    results = train.main(["--eval-only", "--model-dir", out, *argv])
    row["eval_accuracy"] = results.get("accuracy")
    row["eval_match"] = row["eval_accuracy"] == row["accuracy"]
    if not row["eval_match"]:
        raise RuntimeError(f"--eval-only gives {row['eval_accuracy']}, the trained run {row['accuracy']}")


def check_resume(report: Report, root: str, ckpt: str, scratch: str, cache: str, sizes: Sizes) -> None:
    """``scripts/check_dassl.py``'s resume check on the synthetic ImageNet, under the engine in use."""
    opts = ["FEATURE_CACHE.NUM_VIEWS", "2", "OPTIM.LR", "0.05"]
    whole = os.path.join(scratch, "resume", "whole")
    train.main(train_argv("TaskRes", root, ckpt, whole, cache, sizes, sizes.resume_epochs, opts=opts))
    out = os.path.join(scratch, "resume", "interrupted")
    argv = train_argv("TaskRes", root, ckpt, out, cache, sizes, sizes.resume_epochs,
                      opts=opts + ["TRAIN.RESUME_SAVE_S", "0"])
    ok, line = interrupt_once_saved([sys.executable, os.path.join(REPO, "train.py"), *argv], out, dict(os.environ),
                                    timeout=report.left())
    train.main(argv)
    equal = same_run(whole, out)
    report.data["resume"] = {"interrupted": ok, "signal_line": line, "equal": equal,
                             "accuracy_whole": accuracy(whole), "accuracy_resumed": accuracy(out)}
    if not (ok and equal):
        raise RuntimeError(f"SIGINT + resume: stopped as it should {ok} ({line}); resumed equals whole {equal}")


def project(report: Report) -> None:
    """TaskRes 16-shot ImageNet at paper protocol, from the measured RN50 extraction rate and TaskRes's epochs."""
    enc = next((r for r in report.data["encoder"] if r["arch"] == "RN50"), None)
    if enc is None:
        raise RuntimeError("no RN50 extraction rate was measured (the encoder step failed)")
    rate = enc["extraction_views_per_s"]
    proj = {"arch": "RN50", "views": PAPER_IMAGENET_VIEWS, "views_per_s": rate,
            "extraction_h": PAPER_IMAGENET_VIEWS / rate / 3600, "training_h": None, "training_basis": None}
    run = next((r for r in report.data["methods"] if r["method"] == "TaskRes" and r.get("epoch_s")), None)
    if run:
        per_epoch = run["epoch_s"] * (16000 / run["train_images"])
        proj.update(training_h=per_epoch * PAPER_EPOCHS / 3600,
                    training_basis=f"{run['epoch_s']:.3f} s per epoch on {run['train_images']} images, scaled to "
                                   f"16,000 x {PAPER_EPOCHS} epochs")
    report.data["projection"] = proj


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="tiny random CLIPs, 4 classes, 48 px images, 1 epoch")
    p.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    p.add_argument("--budget-s", type=float, default=450.0, help="the whole run's time budget (seconds)")
    p.add_argument("--out-dir", default=os.path.join(REPO, "benchmarks", "results", "gpu"))
    p.add_argument("--workdir", default="", help="scratch folder (default: a new temporary folder)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device; use --device cpu --tiny on a CPU")
    sizes = Sizes(args.tiny, device.type == "cuda")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    stem = os.path.join(args.out_dir, f"{time.strftime('%Y-%m-%d')}{'-tiny' if args.tiny else ''}-"
                                      f"{re.sub(r'[^A-Za-z0-9]+', '-', name)}")
    report = Report(stem, {"device": name, "date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__,
                           "command": " ".join(["python benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
                           "sizes": f"{sizes.classes} classes x {sizes.shots} shots, {sizes.image_side} px JPEG, "
                                    f"{sizes.input_px} px input, {sizes.epochs} epoch(s)"}, args.budget_s)
    scratch = args.workdir or tempfile.mkdtemp(prefix="gpu_check-")
    root, cache = os.path.join(scratch, "data"), os.path.join(scratch, "cache")
    items = report.step("data", sizes.budgets["data"], write_data, root, sizes) or []
    ckpts = {arch: report.step(f"backbone {arch}", sizes.budgets["backbone"], random_clip, scratch, arch,
                               sizes.input_px, kind) for arch, kind in sizes.archs.items()}
    for arch, ckpt in ckpts.items():
        if ckpt and items:
            report.step(f"encoder {arch}", sizes.budgets["encoder"], measure_encoder, report, arch, ckpt, items,
                        device, sizes)
    for method in args.methods or sorted(trainers.declared_methods()):
        arch = "ViT-B/16" if "vit_b16" in (trainers.method_spec(method).recipe_config or "") else "RN50"
        row = {"method": method, "arch": arch, "error": "not run"}
        report.data["methods"].append(row)
        if not (items and ckpts[arch]):
            row["error"] = "no data or backbone (an earlier step failed)"
            continue
        out = os.path.join(scratch, "runs", method)
        run_argv = train_argv(method, root, ckpts[arch], out, cache, sizes, sizes.epochs)
        report.step(f"train {method}", sizes.budgets["method"], train_method, row, run_argv, out, device)
        if row["error"] is None:
            row["train_images"] = sizes.classes * sizes.shots_of(method)
            report.step(f"eval-only {method}", sizes.budgets["eval"], eval_method, row, run_argv, out)
        last = report.data["steps"][-1]
        if last["status"] != "ok":
            row["error"] = f"{last['step']}: {last.get('error')}"
    if items and ckpts["RN50"]:
        report.step("resume TaskRes", sizes.budgets["resume"], check_resume, report, root, ckpts["RN50"], scratch,
                    cache, sizes)
    report.step("projection", 5, project, report)  # (every step writes the results)
    logger.info("Results in %s.md / .json (%s)", stem, scratch)
    failed = [r for r in report.data["steps"] if r["status"] != "ok"]
    if failed:
        logger.error("%d step(s) failed or skipped: %s", len(failed),
                     "; ".join(f"{r['step']}: {r.get('error')}" for r in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
