"""A data tree we used stays usable by plain CoOp/Dassl (issue 10, item 7).

Nothing we write has a name CoOp/Dassl read; every pickle left in the tree loads with nothing but a
stand-in for Dassl's ``Datum`` module; files CoOp wrote are never modified; pickles written by earlier
versions of this project (which CoOp cannot read) are converted to our JSON and removed.
"""
import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from engine import Datum, set_random_seed
from tests.fixtures.synthetic_datasets import write_dataset
from tests.test_datasets import PER_CLASS, _write_dassl_pickle, expected_fewshot, load, rel

# What CoOp's readers do with a few-shot or preprocessed file: pickle.load, with Dassl importable.
PLAIN_READER = textwrap.dedent("""
    import os, pickle, sys
    sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p not in ("", os.getcwd())]
    found = []
    for dirpath, _, files in os.walk(sys.argv[2]):
        for name in sorted(files):
            if name.endswith(".pkl"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    data = pickle.load(f)
                assert all(type(d).__module__ == "dassl.data.datasets.base_dataset" for v in data.values() for d in v)
                found.append(os.path.relpath(os.path.join(dirpath, name), sys.argv[2]))
    print("\\n".join(found))
""")


def plain_coop_read(tmp_path, root) -> list:
    """Every ``.pkl`` under ``root`` loaded in a fresh interpreter that has a Dassl ``Datum`` and not this repo."""
    stub = tmp_path / "fake_dassl"
    assert (stub / "dassl" / "data" / "datasets" / "base_dataset.py").is_file()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", PLAIN_READER, str(stub), str(root)], capture_output=True,
                         text=True, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def snapshot(path):
    return path.read_bytes(), os.stat(path).st_mtime_ns


def written_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


def test_tree_we_used_is_read_by_plain_coop(tmp_path):
    root = tmp_path / "data"
    write_dataset("Caltech101", str(root), per_class=PER_CLASS)
    write_dataset("Food101", str(root), per_class=PER_CLASS, with_split_file=False)
    write_dataset("ImageNet", str(root), per_class=8)
    before = set(written_files(root))
    # CoOp already ran Caltech101 2-shot seed 1 and ImageNet on this tree.
    full = load(root, "Caltech101").dataset
    set_random_seed(1)
    picks = {"train": expected_fewshot(full.train_x, 2), "val": expected_fewshot(full.val, 2)}
    coop_fewshot = root / "caltech-101" / "split_fewshot" / "shot_2-seed_1.pkl"
    coop_fewshot.parent.mkdir()
    _write_dassl_pickle(tmp_path, {k: [[d.impath, d.label, d.classname] for d in v] for k, v in picks.items()},
                        coop_fewshot)
    inet = sorted((root / "imagenet" / "images" / "train").rglob("*.JPEG"))
    coop_lists = root / "imagenet" / "preprocessed.pkl"
    _write_dassl_pickle(tmp_path, {"train": [[str(p), sorted(os.listdir(p.parent.parent)).index(p.parent.name),
                                              "x"] for p in inet], "test": []}, coop_lists)
    theirs = {p: snapshot(p) for p in (coop_fewshot, coop_lists)}

    for shots, seed in ((2, 1), (2, 2), (4, 1), (-1, 1)):
        for name in ("Caltech101", "Food101", "ImageNet"):
            load(root, name, shots=shots, seed=seed)

    assert {p: snapshot(p) for p in theirs} == theirs  # CoOp's files: never rewritten, not even touched
    assert sorted(plain_coop_read(tmp_path, root)) == ["caltech-101/split_fewshot/shot_2-seed_1.pkl",
                                                       "imagenet/preprocessed.pkl"]
    ours = set(written_files(root)) - before - {os.path.relpath(p, root) for p in theirs}
    assert ours and not [f for f in ours if f.endswith(".pkl") or "split_zhou" in f]
    for f in ours:  # plain JSON, no class of ours inside
        text = (root / f).read_text()
        json.loads(text)
        assert "engine." not in text, f


def test_coop_pickle_gives_the_picks_even_when_it_appears_later(tmp_path):
    root = tmp_path / "data"
    write_dataset("Caltech101", str(root), per_class=PER_CLASS)
    ours = load(root, "Caltech101", shots=2, seed=1).dataset
    record = root / "caltech-101" / "split_fewshot" / "shot_2-seed_1.taskres.json"
    assert json.loads(record.read_text())["coop_pickle_sha256"] is None
    # CoOp then writes other picks for the same (K, seed): from now on they are the ones used.
    full = load(root, "Caltech101").dataset
    theirs = {"train": [d for d in full.train_x if d.impath not in {x.impath for x in ours.train_x}][::5],
              "val": full.val[::3]}
    pkl = root / "caltech-101" / "split_fewshot" / "shot_2-seed_1.pkl"
    _write_dassl_pickle(tmp_path, {k: [[d.impath, d.label, d.classname] for d in v] for k, v in theirs.items()}, pkl)
    kept = snapshot(pkl)
    for _ in range(2):
        ds = load(root, "Caltech101", shots=2, seed=1).dataset
        assert rel(ds, ds.train_x) == rel(full, theirs["train"]) and rel(ds, ds.val) == rel(full, theirs["val"])
    assert json.loads(record.read_text())["coop_pickle_sha256"] is not None
    assert snapshot(pkl) == kept


def test_fewshot_file_survives_a_moved_root(tmp_path):
    write_dataset("OxfordPets", str(tmp_path / "a"), per_class=PER_CLASS)
    first = load(tmp_path / "a", "OxfordPets", shots=4, seed=3).dataset
    os.rename(tmp_path / "a", tmp_path / "b")
    record = tmp_path / "b" / "oxford_pets" / "split_fewshot" / "shot_4-seed_3.taskres.json"
    kept = snapshot(record)
    set_random_seed(99)  # were it drawn again, this would show
    moved = load(tmp_path / "b", "OxfordPets", shots=4, seed=3).dataset
    assert rel(moved, moved.train_x) == rel(first, first.train_x) and rel(moved, moved.val) == rel(first, first.val)
    assert all(str(tmp_path / "b") in d.impath for d in moved.train_x)
    assert snapshot(record) == kept


@pytest.mark.skipif(Datum.__module__ != "engine.builtin.dataset", reason="legacy pickles hold the built-in Datum")
def test_pickles_of_earlier_versions_are_converted_and_removed(tmp_path):
    """Earlier versions wrote our Datum class under CoOp's names: read once, kept as JSON, removed."""
    root = tmp_path / "data"
    write_dataset("Caltech101", str(root), per_class=PER_CLASS)
    write_dataset("ImageNet", str(root), per_class=6)
    full = load(root, "Caltech101").dataset
    legacy = {"train": full.train_x[1::5], "val": full.val[::4]}  # not what a fresh draw would give
    fewshot = root / "caltech-101" / "split_fewshot" / "shot_2-seed_1.pkl"
    fewshot.parent.mkdir()
    fewshot.write_bytes(pickle.dumps(legacy))
    inet = load(root, "ImageNet").dataset
    (root / "imagenet" / "lists.taskres.json").unlink()
    reordered = list(reversed(inet.train_x))  # a legacy list in another order: its order must be kept
    lists = root / "imagenet" / "preprocessed.pkl"
    lists.write_bytes(pickle.dumps({"train": reordered, "test": inet.test}))

    ds = load(root, "Caltech101", shots=2, seed=1).dataset
    assert rel(ds, ds.train_x) == rel(full, legacy["train"]) and rel(ds, ds.val) == rel(full, legacy["val"])
    got = load(root, "ImageNet", shots=2, seed=5).dataset
    set_random_seed(5)
    assert rel(got, got.train_x) == rel(inet, expected_fewshot(reordered, 2))
    assert not fewshot.exists() and not lists.exists()
    assert (root / "imagenet" / "lists.taskres.json").is_file()
    again = load(root, "Caltech101", shots=2, seed=1).dataset  # from our JSON now
    assert rel(again, again.train_x) == rel(full, legacy["train"])
