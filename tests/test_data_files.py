"""Split provenance and unusable data files (issue 11 item 8, issue 12 item 5).

A split built from raw annotations is never written under the official name and is marked
(``official_split``, one warning). An unusable split or few-shot file ends the run with one line naming
the file and the fix (no traceback); a file of ours is rebuilt with a warning instead.
"""
import json
import logging
import os
import subprocess
import sys

import pytest

import train
from tests.conftest import train_args
from tests.fixtures.synthetic_datasets import write_dataset
from tests.test_datasets import PER_CLASS, REPO, _write_dassl_pickle, load, rel


def run_error(root, clip, out, **kw) -> str:
    """The one line ``train.main`` exits with (asserting it is one line and an error)."""
    with pytest.raises(SystemExit) as exc:
        train.main(train_args(str(root), clip, str(out), **kw))
    message = exc.value.code
    assert isinstance(message, str) and message.startswith("error: ")  # a str exit code: status 1
    assert "\n" not in message and "Traceback" not in message
    return message


# ------------------------------------------------------------------------------------------------------------
# Official or built split
# ------------------------------------------------------------------------------------------------------------
def test_built_split_is_marked_and_warned_once(tmp_path, caplog):
    write_dataset("Food101", str(tmp_path), per_class=PER_CLASS, with_split_file=False)
    with caplog.at_level(logging.WARNING):
        first = load(tmp_path, "Food101", shots=2).dataset
        again = load(tmp_path, "Food101", shots=2, seed=2).dataset
    assert first.official_split is False and again.official_split is False
    assert not (tmp_path / "food-101" / "split_zhou_Food101.json").exists()
    assert (tmp_path / "food-101" / "split_built_Food101.json").is_file()
    warnings = [r.getMessage() for r in caplog.records if "NOT comparable" in r.getMessage()]
    assert len(warnings) == 1
    assert "python -m datasets.download splits" in warnings[0] and "split_built_Food101.json" in warnings[0]
    assert "python -m datasets.download splits" in open(os.path.join(REPO, "DATASETS.md")).read()
    for name in ("Caltech101", "ImageNet", "FGVCAircraft"):  # official split, folder layout, official lists
        write_dataset(name, str(tmp_path), per_class=PER_CLASS)
        assert load(tmp_path, name, shots=2).dataset.official_split is True


def test_official_split_replaces_the_built_one_and_its_fewshot_sets(tmp_path):
    write_dataset("DescribableTextures", str(tmp_path), per_class=PER_CLASS, with_split_file=False)
    built = load(tmp_path, "DescribableTextures", shots=2).dataset
    record = tmp_path / "dtd" / "split_fewshot" / "shot_2-seed_1.taskres.json"
    assert json.loads(record.read_text())["drawn_from"] == "split_built_DescribableTextures.json"
    write_dataset("DescribableTextures", str(tmp_path), per_class=PER_CLASS, with_split_file=True)  # user downloads it
    official = load(tmp_path, "DescribableTextures", shots=2).dataset
    assert official.official_split is True
    with open(tmp_path / "dtd" / "split_zhou_DescribableTextures.json") as f:
        split = json.load(f)
    train_rel = {r[0] for r in split["train"]}
    assert {os.path.relpath(d.impath, official.image_dir) for d in official.train_x} <= train_rel
    assert rel(official, official.test) != rel(built, built.test)  # a different split, so the picks were redrawn
    assert json.loads(record.read_text())["drawn_from"] == "split_zhou_DescribableTextures.json"


# ------------------------------------------------------------------------------------------------------------
# Unusable files through train.py: one line, the file, the fix
# ------------------------------------------------------------------------------------------------------------
SPLIT = "caltech-101/split_zhou_Caltech101.json"


@pytest.mark.parametrize("content, reason", [
    (lambda text: text[: len(text) // 2], "not valid JSON"),
    (lambda text: "", "empty"),
    (lambda text: '{"train": []}', "no 'val' list"),
    (lambda text: '{"train": [["a.jpg", "zero", "x"]], "val": [], "test": []}', "entry 0 of 'train'"),
    (lambda text: "[1, 2]", "expected an object"),
])
def test_unusable_official_split_is_one_line(tmp_path, tiny_clip, content, reason):
    write_dataset("Caltech101", str(tmp_path / "d"), per_class=6)
    path = tmp_path / "d" / SPLIT
    path.write_text(content(path.read_text()))
    message = run_error(tmp_path / "d", tiny_clip, tmp_path / "out")
    assert str(path) in message and reason in message
    assert "python -m datasets.download splits" in message and "--force" in message  # the fix for an official file


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unusable_coop_fewshot_pickle_is_one_line_and_kept(tmp_path, tiny_clip, damage):
    root = tmp_path / "d"
    write_dataset("Caltech101", str(root), per_class=6)
    full = load(root, "Caltech101").dataset
    pkl = root / "caltech-101" / "split_fewshot" / "shot_4-seed_1.pkl"
    pkl.parent.mkdir()
    _write_dassl_pickle(tmp_path, {"train": [[d.impath, d.label, d.classname] for d in full.train_x],
                                   "val": [[d.impath, d.label, d.classname] for d in full.val]}, pkl)
    data = pkl.read_bytes()
    pkl.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x80\x05garbage")
    kept = pkl.read_bytes()
    message = run_error(root, tiny_clip, tmp_path / "out")
    assert str(pkl) in message and "delete it" in message
    assert pkl.read_bytes() == kept  # theirs: never rewritten


def test_unusable_fewshot_file_exits_nonzero_from_the_command_line(tmp_path, tiny_clip):
    root = tmp_path / "d"
    write_dataset("Caltech101", str(root), per_class=6)
    pkl = root / "caltech-101" / "split_fewshot" / "shot_4-seed_1.pkl"
    pkl.parent.mkdir()
    pkl.write_bytes(b"\x80\x05\x95")
    out = subprocess.run([sys.executable, "train.py", *train_args(str(root), tiny_clip, str(tmp_path / "out"))],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(pkl) in last and "Traceback" not in out.stderr


# ------------------------------------------------------------------------------------------------------------
# Unusable files of ours: rebuilt, with a warning
# ------------------------------------------------------------------------------------------------------------
def test_corrupt_fewshot_file_of_ours_is_rebuilt(tmp_path, caplog):
    write_dataset("OxfordPets", str(tmp_path), per_class=PER_CLASS)
    first = load(tmp_path, "OxfordPets", shots=2, seed=7).dataset
    record = tmp_path / "oxford_pets" / "split_fewshot" / "shot_2-seed_7.taskres.json"
    for damage in (record.read_text()[:100], '{"format": "taskres-fewshot", "version": 1, "train": []}'):
        record.write_text(damage)
        with caplog.at_level(logging.WARNING):
            again = load(tmp_path, "OxfordPets", shots=2, seed=7).dataset
        assert any(str(record) in r.getMessage() and "made again" in r.getMessage() for r in caplog.records)
        assert rel(again, again.train_x) == rel(first, first.train_x)  # the same seeded draw
        assert rel(again, again.val) == rel(first, first.val)
        json.loads(record.read_text())


def test_corrupt_built_split_and_imagenet_lists_are_rebuilt(tmp_path, caplog):
    write_dataset("EuroSAT", str(tmp_path), per_class=PER_CLASS, with_split_file=False)
    write_dataset("ImageNet", str(tmp_path), per_class=6)
    first_split = load(tmp_path, "EuroSAT").dataset
    first_inet = load(tmp_path, "ImageNet", shots=2).dataset
    built = tmp_path / "eurosat" / "split_built_EuroSAT.json"
    lists = tmp_path / "imagenet" / "lists.taskres.json"
    built.write_text(built.read_text()[:50])
    lists.write_text("{")
    (tmp_path / "imagenet" / "split_fewshot" / "shot_2-seed_1.taskres.json").unlink()
    with caplog.at_level(logging.WARNING):
        split = load(tmp_path, "EuroSAT").dataset
        inet = load(tmp_path, "ImageNet", shots=2).dataset
    logged = caplog.text
    assert str(built) in logged and "built again" in logged and str(lists) in logged
    assert rel(split, split.test) == rel(first_split, first_split.test)  # same seed, same build
    assert rel(inet, inet.train_x) == rel(first_inet, first_inet.train_x)
    json.loads(built.read_text()) and json.loads(lists.read_text())


def test_corrupt_coop_imagenet_lists_is_one_line(tmp_path):
    from datasets import DatasetFileError

    write_dataset("ImageNet", str(tmp_path), per_class=4)
    coop = tmp_path / "imagenet" / "preprocessed.pkl"
    coop.write_bytes(b"\x80\x05\x95\x00")
    with pytest.raises(DatasetFileError) as err:
        load(tmp_path, "ImageNet", shots=1)
    assert str(coop) in str(err.value) and "delete it" in str(err.value) and "\n" not in str(err.value)
    assert coop.read_bytes() == b"\x80\x05\x95\x00"
