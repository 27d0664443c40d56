"""The test set out of reach: corrupting every test label changes no selection, in any track, on any dataset.

Every method that selects (the linear probe's C, Tip-Adapter's alpha/beta, Tip-Adapter-F's epoch and
alpha/beta, LP++'s iteration, and ``TEST.FINAL_MODEL best_val`` with TaskRes), on Caltech101 (val is its own
split) and ImageNet (val is the test list: selection runs on held-out train images), in every track, trains
through ``train.main`` before and after the test labels are made wrong: what it selected, on which images,
and the deployed state must be identical, while test accuracy collapses.

Mutation check (run by hand, see docs/fidelity.md): building ``val_loader`` from ``dataset.val`` (ImageNet's
test list) in ``ClipTrainer.build_data_loader`` makes the ImageNet best_val cases fail here.
"""
import glob
import json
import os

import pytest
import torch

import datasets
import train
from engine import load_checkpoint
from tests.conftest import train_args
from tests.fixtures.synthetic_datasets import write_dataset

pytestmark = pytest.mark.slow

# trainer -> (config file, overrides, epochs); the "best_val" case is TaskRes deploying its best-val epoch.
SETUPS = {
    "LinearProbeCLIP": ("LinearProbeCLIP", "configs/trainers/LinearProbeCLIP/rn50.yaml",
                        ("TRAINER.LINEAR_PROBE.REFINE_STEPS", "2"), 1),
    "TipAdapter": ("TipAdapter", "configs/trainers/TipAdapter/rn50.yaml",
                   ("TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "2", "TRAINER.TIP_ADAPTER.SEARCH_STEP", "[20, 5]"), 1),
    "TipAdapterF": ("TipAdapterF", "configs/trainers/TipAdapterF/rn50.yaml",
                    ("TRAINER.TIP_ADAPTER_F.AUGMENT_EPOCH", "2", "TRAINER.TIP_ADAPTER_F.SEARCH_STEP", "[20, 5]",
                     "OPTIM.LR", "0.01"), 4),
    "LPP": ("LPP", "configs/trainers/LPP/rn50.yaml", (), 6),
    "best_val": ("TaskRes", "configs/trainers/TaskRes/rn50.yaml", ("TEST.FINAL_MODEL", "best_val", "OPTIM.LR", "0.05"), 4),
}
DATASETS = {"caltech101": "Caltech101", "imagenet": "ImageNet"}


def corrupt_test_labels(root: str, dataset: str) -> None:
    """Every test label wrong: Caltech101's split-file test entries shifted by one class; ImageNet's val
    folders (its test set) rotated, so each image lands in the next class's folder."""
    if dataset == "caltech101":
        path = os.path.join(root, "caltech-101", "split_zhou_Caltech101.json")
        with open(path) as f:
            split = json.load(f)
        names = {label: name for _, label, name in split["train"]}
        split["test"] = [[rel, (label + 1) % len(names), names[(label + 1) % len(names)]]
                         for rel, label, _ in split["test"]]
        with open(path, "w") as f:
            json.dump(split, f)
        return
    val = os.path.join(root, "imagenet", "images", "val")
    wnids = sorted(os.listdir(val))
    for i, w in enumerate(wnids):
        os.rename(os.path.join(val, w), os.path.join(val, f"tmp{i}"))
    for i in range(len(wnids)):
        os.rename(os.path.join(val, f"tmp{i}"), os.path.join(val, wnids[(i + 1) % len(wnids)]))


def run(case, dataset, track, root, clip, out, cache_dir):
    trainer, config, overrides, epochs = SETUPS[case]
    argv = train_args(root, clip, out, trainer=trainer, dataset=dataset, epochs=epochs,
                      extra=("--config-file", config, "--cache-dir", cache_dir, *overrides, "DATASET.TRACK", track))
    return train.main(argv)


def chosen(out):
    """What the run selected: its metrics' extra values, what it selected on, and the deployed state."""
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    best = glob.glob(os.path.join(out, "*", "model-best.pth.tar"))
    last = sorted(glob.glob(os.path.join(out, "*", "model.pth.tar-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
    ckpt = load_checkpoint((best or last)[-1])
    return metrics, {"extra": metrics["extra"], "selection": metrics["selection_data"], "epoch": ckpt["epoch"],
                     "val_result": ckpt.get("val_result"), "state": ckpt["state_dict"]}


CASES = [(c, d, t) for d in DATASETS for t in datasets.TRACKS for c in SETUPS if not (t == "valfree" and c == "best_val")]


@pytest.fixture(scope="module")
def selection_runs(tiny_clip, tmp_path_factory):
    """Each case on its dataset's own root, clean then corrupt (train features are identical: views are seeded
    by image path, and only test entries change)."""
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    results = {}
    for dataset, name in DATASETS.items():
        root = str(tmp_path_factory.mktemp(f"data_{dataset}"))
        write_dataset(name, root, num_classes=4, per_class=30 if dataset == "caltech101" else 20, image_size=32)
        for state in ("clean", "corrupt"):
            if state == "corrupt":
                corrupt_test_labels(root, dataset)
            for case, d, track in CASES:
                if d == dataset:
                    out = str(tmp_path_factory.mktemp(f"{case}_{dataset}_{track}_{state}"))
                    results[case, dataset, track, state] = out, run(case, dataset, track, root, tiny_clip, out,
                                                                    cache_dir)
    return results


@pytest.mark.parametrize("case, dataset, track", CASES)
def test_selection_ignores_test_labels(case, dataset, track, selection_runs):
    clean_out, clean = selection_runs[case, dataset, track, "clean"]
    corrupt_out, corrupt = selection_runs[case, dataset, track, "corrupt"]
    assert corrupt["accuracy"] < clean["accuracy"]  # the corruption is real: test accuracy collapses
    metrics, ours = chosen(clean_out)
    _, theirs = chosen(corrupt_out)
    for key, value in ours["state"].items():
        assert torch.equal(value, theirs["state"][key]), key
    for key in ("epoch", "val_result", "extra", "selection"):  # the val accuracy it selected with, too
        assert ours[key] == theirs[key], key
    assert metrics["track"] == track
    if track == "valfree":
        assert ours["selection"] is None and not metrics["read_validation"]
        return
    sel = ours["selection"]
    assert sel["track"] == track and metrics["read_validation"]
    paper = {"LinearProbeCLIP": "fewshot_val", "TipAdapter": "val_split", "TipAdapterF": "val_split",
             "LPP": "kshot_val", "best_val": "dassl_val"}[case]
    want = {  # (dataset, source the method's original selected on) -> (source, images) in the paper track
        ("caltech101", "fewshot_val"): ("fewshot_val", 16), ("caltech101", "dassl_val"): ("fewshot_val", 16),
        ("caltech101", "val_split"): ("val_split", 24), ("caltech101", "kshot_val"): ("kshot_val", 16),
        ("imagenet", "fewshot_val"): ("heldout_val", 16), ("imagenet", "dassl_val"): ("heldout_paper", 40),
        ("imagenet", "val_split"): ("heldout_paper", 40), ("imagenet", "kshot_val"): ("heldout_kshot", 16),
    }[dataset, paper]
    if track == "fewshot_val":  # min(K, 4) per class for every method
        want = ("heldout_val" if dataset == "imagenet" else "fewshot_val", 16)
    assert (sel["source"], sel["images"]) == want
