"""ImageNet's held-out val and start-up (issue 13): drawn by the dataset layer, kept beside the few-shot set.

The rule is the one ``trainers/base.py:validation_items`` applied before it moved here: ``min(K, 4)``
images per class from the full train split, outside the few-shot set and the test set, labels in
sorted order, ``random.Random(max(seed, 0)).sample``. A run whose few-shot file exists never reads
the full training list.
"""
import json
import os
import random

import pytest

import datasets
from engine import set_random_seed
from tests.fixtures.synthetic_datasets import write_dataset
from tests.test_datasets import expected_fewshot, load, rel


def old_rule(full_train, fewshot_train, test, shots, seed):
    """The held-out val as trainers/base.py drew it, written out independently."""
    taken = {d.impath for d in fewshot_train} | {d.impath for d in test}
    rng = random.Random(max(seed, 0))
    out = []
    for label in sorted({d.label for d in fewshot_train}):
        pool = [d for d in full_train if d.label == label and d.impath not in taken]
        out += rng.sample(pool, min(min(shots, 4) if shots >= 1 else 4, len(pool)))
    return out


@pytest.fixture
def imagenet(tmp_path):
    write_dataset("ImageNet", str(tmp_path), num_classes=5, per_class=12)
    return tmp_path


@pytest.mark.parametrize("shots, seed", [(1, 1), (2, 2), (8, 3), (10, 1)])
def test_heldout_val_follows_the_rule_and_is_kept(imagenet, shots, seed):
    full = load(imagenet, "ImageNet").dataset
    ds = load(imagenet, "ImageNet", shots=shots, seed=seed).dataset
    set_random_seed(seed)
    assert rel(ds, ds.train_x) == rel(full, expected_fewshot(full.train_x, shots))  # Dassl's draw, sorted lists
    want = old_rule(full.train_x, ds.train_x, full.test, shots, seed)
    assert rel(ds, ds.heldout_val) == rel(full, want) and len(want) == 5 * min(shots, 4, 12 - shots)
    assert datasets.select_validation(ds)[0] == ds.heldout_val
    record = json.loads((imagenet / "imagenet" / "split_fewshot" / f"shot_{shots}-seed_{seed}.taskres.json").read_text())
    assert [tuple(r) for r in record["heldout_val"]] == rel(ds, want)
    again = load(imagenet, "ImageNet", shots=shots, seed=seed).dataset  # read back from the file
    assert rel(again, again.heldout_val) == rel(ds, ds.heldout_val)


def test_run_with_fewshot_file_never_reads_the_training_list(imagenet):
    first = load(imagenet, "ImageNet", shots=2, seed=1).dataset
    ddir = imagenet / "imagenet"
    (ddir / "lists.taskres.json").unlink()
    keep = {d.impath for d in first.train_x + first.heldout_val + first.heldout_paper}
    removed = [p for p in (ddir / "images" / "train").rglob("*.JPEG") if str(p) not in keep]
    for p in removed:
        p.unlink()
    assert removed
    (ddir / "preprocessed.pkl").write_bytes(b"not a pickle")  # were CoOp's list read, this would stop the run
    second = load(imagenet, "ImageNet", shots=2, seed=1).dataset
    assert rel(second, second.train_x) == rel(first, first.train_x)
    assert rel(second, second.heldout_val) == rel(first, first.heldout_val)
    assert rel(second, second.heldout_paper) == rel(first, first.heldout_paper)
    assert rel(second, second.test) == rel(first, first.test)
    assert not (ddir / "lists.taskres.json").exists()  # the training folders were not listed


def test_heldout_val_with_class_subsampling(imagenet):
    everything = load(imagenet, "ImageNet", shots=2, seed=4).dataset
    base = load(imagenet, "ImageNet", shots=2, seed=4, subsample="base").dataset
    new = load(imagenet, "ImageNet", shots=2, seed=4, subsample="new").dataset
    assert rel(base, base.heldout_val) == [r for r in rel(everything, everything.heldout_val) if r[1] < 3]
    assert rel(new, new.heldout_val) == [(p, y - 3, c) for p, y, c in rel(everything, everything.heldout_val)
                                         if y >= 3]


def test_no_heldout_val_is_a_clear_error(imagenet):
    full = load(imagenet, "ImageNet").dataset  # every train image trains: nothing is held out
    with pytest.raises(datasets.ValidationSplitError, match="no held-out val is left"):
        datasets.select_validation(full, "ImageNet")
    write_dataset("ImageNetSketch", str(imagenet), per_class=2)
    with pytest.raises(datasets.ValidationSplitError, match="test-only"):
        datasets.select_validation(load(imagenet, "ImageNetSketch").dataset)
    write_dataset("Caltech101", str(imagenet), per_class=20)
    caltech = load(imagenet, "Caltech101", shots=2).dataset
    assert caltech.heldout_val is None and datasets.select_validation(caltech)[0] == caltech.val


def test_fewshot_record_paths_are_relative(imagenet):
    load(imagenet, "ImageNet", shots=2, seed=1)
    record = json.loads((imagenet / "imagenet" / "split_fewshot" / "shot_2-seed_1.taskres.json").read_text())
    rows = record["train"] + record["heldout_val"]
    assert rows and all(not os.path.isabs(r[0]) and r[0].startswith("images/train/") for r in rows)
    assert record["num_shots"] == 2 and record["seed"] == 1 and record["dataset"] == "ImageNet"


def test_paper_heldout_is_test_sized_disjoint_kept_and_added_to_old_files(imagenet):
    """The paper track's ImageNet set: per class as many train images as test has, outside the few-shot picks
    and test, kept in the few-shot file; a file written before it existed gains it, picks unchanged."""
    from collections import Counter

    ds = load(imagenet, "ImageNet", shots=2, seed=1).dataset
    assert Counter(d.label for d in ds.heldout_paper) == Counter(d.label for d in ds.test)
    taken = {d.impath for d in ds.train_x} | {d.impath for d in ds.test}
    assert not taken & {d.impath for d in ds.heldout_paper}
    path = imagenet / "imagenet" / "split_fewshot" / "shot_2-seed_1.taskres.json"
    record = json.loads(path.read_text())
    assert [tuple(r) for r in record["heldout_paper"]] == rel(ds, ds.heldout_paper)
    del record["heldout_paper"]
    path.write_text(json.dumps(record))
    again = load(imagenet, "ImageNet", shots=2, seed=1).dataset
    assert rel(again, again.train_x) == rel(ds, ds.train_x) and rel(again, again.heldout_val) == rel(ds, ds.heldout_val)
    assert rel(again, again.heldout_paper) == rel(ds, ds.heldout_paper)
    assert "heldout_paper" in json.loads(path.read_text())
    items, rec = datasets.select_validation(again, track="paper", paper="val_split", num_shots=2, seed=1)
    assert items == again.heldout_paper and rec["source"] == "heldout_paper" and rec["images"] == len(again.test)
    assert rec["listed_in"] == "split_fewshot/shot_2-seed_1.taskres.json"
    assert datasets.select_validation(again, track="fewshot_val", paper="val_split")[0] == again.heldout_val
