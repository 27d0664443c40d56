"""Extraction: uint8 pixels normalised on the device equal the PIL path; a bad image is one clear line;
the cache lock is the cluster-safe one."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from engine import CorruptImageError, build_transform
from engine.fileio import cluster_lock
from features.extraction import Normalizer, SeededViews, extract_features, split_transform, view_seed
from tests.conftest import make_trainer, train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def trainer(data_root, tiny_clip, tmp_path):
    return make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "t")))


@pytest.mark.parametrize("is_train", [True, False])
def test_uint8_views_normalised_on_the_device_equal_the_pil_transform(trainer, data_root, is_train):
    from engine import read_image

    tfm = build_transform(trainer.cfg, is_train=is_train)
    assert split_transform(tfm) is not None
    items = trainer.dm.dataset.train_x[:3]
    ds = SeededViews(items, tfm, 0, 3, seed=7, root=data_root)
    norm = Normalizer(trainer.clip, *split_transform(tfm)[1:])
    for i, item in enumerate(items):
        views, idx = ds[i]
        assert views.dtype == torch.uint8 and idx == i
        img = read_image(item.impath)
        for v in range(3):
            torch.manual_seed(view_seed(7, os.path.relpath(item.impath, data_root), v))
            torch.testing.assert_close(norm(views[v:v + 1])[0], tfm(img), rtol=0, atol=0)


def _corrupt_copy(data_root, tmp_path):
    root = str(tmp_path / "data")
    shutil.copytree(data_root, root)
    import json

    cal = os.path.join(root, "caltech-101")
    with open(os.path.join(cal, "split_zhou_Caltech101.json")) as f:
        first_train = json.load(f)["train"][0][0]
    victim = os.path.join(cal, "101_ObjectCategories", first_train)
    with open(victim, "wb") as f:
        f.write(b"not an image at all")
    return root, victim


def test_corrupt_image_during_extraction_is_one_line_naming_the_file(trainer, data_root, tmp_path):
    root, victim = _corrupt_copy(data_root, tmp_path)
    from engine import Datum

    items = [Datum(victim, 0, 0, "x")] + list(trainer.dm.dataset.train_x[:3])
    with pytest.raises(CorruptImageError) as err:
        extract_features(trainer.clip, items, build_transform(trainer.cfg, is_train=True), 2, 0, 4, 2, "t")
    assert victim in str(err.value) and len(str(err.value).splitlines()) == 1


@pytest.mark.slow
def test_corrupt_image_through_train_py_ends_as_one_line(data_root, tiny_clip, tmp_path):
    root, victim = _corrupt_copy(data_root, tmp_path)
    argv = train_args(root, tiny_clip, str(tmp_path / "out"), shots=20) + ["DATALOADER.NUM_WORKERS", "2",
                                                                             "FEATURE_CACHE.NUM_WORKERS", "2"]
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and victim in last


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["missing", "corrupt"])
def test_bad_image_without_the_cache_ends_as_one_line(fault, data_root, tiny_clip, tmp_path):
    # A missing file is found by the dataset layer up front; a corrupt one only when a DataLoader worker reads
    # it, and the worker's error arrives wrapped in its traceback: both end as one line naming the file.
    root, victim = _corrupt_copy(data_root, tmp_path)
    if fault == "missing":
        os.remove(victim)
    argv = ["--no-cache"] + train_args(root, tiny_clip, str(tmp_path / "out"), shots=20) + ["DATALOADER.NUM_WORKERS", "2"]
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == proc.stderr.strip().splitlines()[-1] and victim in errors[0]
    assert ("not on disk" if fault == "missing" else "Cannot read image") in errors[0]


def test_cluster_lock_is_held_with_flufl_lock(tmp_path):
    from datetime import timedelta

    from flufl.lock import Lock, TimeOutError

    path = str(tmp_path / "entry.lock")
    with cluster_lock(path, lifetime_s=60) as held:
        with pytest.raises(TimeOutError):  # another claimant (as from another node) must wait
            Lock(path).lock(timeout=timedelta(seconds=0.3))
        held.refresh(every_s=0)
    other = Lock(path)
    other.lock(timeout=timedelta(seconds=1))  # released: free to take
    other.unlock()
