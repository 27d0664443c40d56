"""The 15 dataset readers on synthetic trees in the real on-disk layouts, loaded the way train.py does."""
import json
import logging
import os
import pickle
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

import datasets
from datasets import (
    IMAGENET_TEMPLATES_SELECT,
    DatasetNotFoundError,
    MissingImagesError,
    add_dataset_config,
    dataset_templates,
    download,
)
from engine import DATASET_REGISTRY, DataManager, get_cfg_default, set_random_seed
from tests.fixtures.synthetic_datasets import (
    DATASET_FOLDERS,
    DATASET_NAMES,
    expected_classnames,
    expected_split_sizes,
    write_dataset,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_CLASS = 20  # 50/20/30 -> 10/4/6; trainval/test -> 11/3/6; ImageNet 20 train, 10 val
VARIANTS = ("ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR")
WITH_RAW_BUILD = ("Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers", "Food101", "SUN397",
                  "DescribableTextures", "EuroSAT", "UCF101")


def make_cfg(root, name, shots=-1, seed=1, subsample="all"):
    cfg = get_cfg_default()
    add_dataset_config(cfg)
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = seed
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    cfg.DATALOADER.TEST.BATCH_SIZE = 8
    cfg.INPUT.SIZE = (32, 32)
    return cfg


def load(root, name, shots=-1, seed=1, subsample="all"):
    """Build the dataset through DataManager, seeding first as train.py does."""
    cfg = make_cfg(root, name, shots, seed, subsample)
    set_random_seed(seed)
    return DataManager(cfg)


def per_class(items):
    counts = {}
    for d in items:
        counts[d.label] = counts.get(d.label, 0) + 1
    return counts


def rel(ds, items):
    return [(os.path.relpath(d.impath, ds.dataset_dir), d.label, d.classname) for d in items]


def expected_fewshot(items, k):
    """The benchmark's sampling, written out: labels in first-appearance order, random.sample per label."""
    groups = {}
    for d in items:
        groups.setdefault(d.label, []).append(d)
    out = []
    for group in groups.values():
        out.extend(random.sample(group, k) if len(group) >= k else group)
    return out


# ------------------------------------------------------------------------------------------------------------
# Every dataset through DataManager
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DATASET_NAMES)
def test_full_split_classnames_and_sizes(tmp_path, name):
    write_dataset(name, str(tmp_path), num_classes=4, per_class=PER_CLASS)
    dm = load(tmp_path, name)
    ds = dm.dataset
    names = expected_classnames(name, 4)
    assert dm.num_classes == len(names) == 4
    assert ds.classnames == names
    assert [dm.lab2cname[i] for i in range(4)] == names
    sizes = expected_split_sizes(name, PER_CLASS)
    for split in ("train", "val", "test"):
        items = ds.train_x if split == "train" else getattr(ds, split)
        assert per_class(items) == {label: sizes[split] for label in range(4)}, split
    for d in ds.test:
        assert os.path.isfile(d.impath) and d.classname == names[d.label]
    batch = next(iter(dm.train_loader_x))
    assert set(batch) >= {"img", "label", "impath", "index"} and batch["img"].shape[1:] == (3, 32, 32)


@pytest.mark.parametrize("name", [n for n in DATASET_NAMES if n not in VARIANTS])
def test_fewshot_has_k_train_and_min_k_4_val(tmp_path, name):
    write_dataset(name, str(tmp_path), per_class=PER_CLASS)
    sizes = expected_split_sizes(name, PER_CLASS)
    for shots in (2, 4):
        ds = load(tmp_path, name, shots=shots).dataset
        assert per_class(ds.train_x) == {y: shots for y in range(4)}
        if name == "ImageNet":  # val is the test set, not sampled
            assert per_class(ds.val) == {y: sizes["test"] for y in range(4)}
        else:
            assert per_class(ds.val) == {y: min(shots, 4, sizes["val"]) for y in range(4)}
        assert per_class(ds.test) == {y: sizes["test"] for y in range(4)}
        cache = tmp_path / DATASET_FOLDERS[name] / "split_fewshot" / f"shot_{shots}-seed_1.taskres.json"
        lists = {k for k, v in json.loads(cache.read_text()).items() if isinstance(v, list)}
        assert lists == ({"train", "heldout_val", "heldout_paper"} if name == "ImageNet" else {"train", "val"})
    assert not [f for f in os.listdir(cache.parent) if f.startswith(".tmp")]  # atomic writes leave nothing behind


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_are_test_only(tmp_path, name):
    write_dataset("ImageNet", str(tmp_path), num_classes=4, per_class=4)
    write_dataset(name, str(tmp_path), num_classes=4, per_class=3)
    ds = load(tmp_path, name, shots=2).dataset  # NUM_SHOTS does not apply
    assert ds.train_x == ds.test == ds.val and len(ds.test) == 12
    assert ds.classnames == load(tmp_path, "ImageNet").dataset.classnames


@pytest.mark.parametrize("name", ["ImageNetA", "ImageNetR"])
def test_imagenet_a_r_label_map_by_wnid(tmp_path, name):
    # classnames.txt lists 8 ImageNet classes; the variant covers wnids 1, 3, 5, 7.
    write_dataset(name, str(tmp_path), num_classes=4, per_class=2)
    ds = load(tmp_path, name).dataset
    assert ds.classnames == expected_classnames(name, 4)
    assert ds.imagenet_label_map == ds.label_map_to_train_classes == [1, 3, 5, 7]
    write_dataset("ImageNet", str(tmp_path), num_classes=8, per_class=2)
    imagenet = load(tmp_path, "ImageNet").dataset
    assert imagenet.label_map_to_train_classes is None
    assert [imagenet.classnames[i] for i in ds.imagenet_label_map] == ds.classnames
    for d in ds.test:  # every image folder's wnid maps to the ImageNet label of that wnid
        wnid = os.path.basename(os.path.dirname(d.impath))
        assert sorted(os.listdir(tmp_path / "imagenet" / "images" / "train"))[ds.imagenet_label_map[d.label]] == wnid


# ------------------------------------------------------------------------------------------------------------
# Building the split from raw annotations
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", WITH_RAW_BUILD)
def test_split_built_from_raw_annotations(tmp_path, name):
    reference = tmp_path / "reference"
    write_dataset(name, str(reference), per_class=PER_CLASS, with_split_file=True)
    raw = tmp_path / "raw"
    write_dataset(name, str(raw), per_class=PER_CLASS, with_split_file=False)
    split_file = raw / DATASET_FOLDERS[name] / f"split_zhou_{name}.json"
    assert not split_file.exists()

    ds = load(raw, name).dataset
    assert not split_file.exists() and not ds.official_split  # never written under the official name
    split_file = raw / DATASET_FOLDERS[name] / f"split_built_{name}.json"
    assert split_file.is_file()
    sizes = expected_split_sizes(name, PER_CLASS)
    assert per_class(ds.train_x) == {y: sizes["train"] for y in range(4)}
    assert per_class(ds.val) == {y: sizes["val"] for y in range(4)}
    assert per_class(ds.test) == {y: sizes["test"] for y in range(4)}
    # Same labels and class names per image as the published-style split file; test and train+val agree.
    with open(reference / DATASET_FOLDERS[name] / f"split_zhou_{name}.json") as f:
        ref = json.load(f)
    with open(split_file) as f:
        built = json.load(f)
    for key in ("train", "val", "test"):
        assert {r[0]: (r[1], r[2]) for r in built[key]}.items() <= {
            r[0]: (r[1], r[2]) for k in ref for r in ref[k]}.items()
    if name in ("OxfordPets", "StanfordCars", "SUN397", "UCF101"):  # test comes from the official lists
        assert sorted(r[0] for r in built["test"]) == sorted(r[0] for r in ref["test"])
    # The written split is what later runs read.
    again = load(raw, name, seed=5).dataset
    assert rel(again, again.train_x) == rel(ds, ds.train_x) and rel(again, again.test) == rel(ds, ds.test)


def test_raw_split_is_seeded(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write_dataset("Food101", str(root), per_class=PER_CLASS, with_split_file=False)
    ds_a, ds_b = load(a, "Food101", seed=3).dataset, load(b, "Food101", seed=3).dataset
    assert rel(ds_a, ds_a.train_x) == rel(ds_b, ds_b.train_x)


# ------------------------------------------------------------------------------------------------------------
# Few-shot: the benchmark's picks, stable across runs and processes, and old pickles
# ------------------------------------------------------------------------------------------------------------
def _fewshot_relpaths(root, name, shots, seed):
    ds = load(root, name, shots=shots, seed=seed).dataset
    return [os.path.relpath(d.impath, ds.dataset_dir) for d in ds.train_x], \
        [os.path.relpath(d.impath, ds.dataset_dir) for d in ds.val]


def test_fewshot_matches_benchmark_sampling(tmp_path):
    write_dataset("Caltech101", str(tmp_path), per_class=PER_CLASS)
    full = load(tmp_path, "Caltech101").dataset
    for seed in (1, 2, 3):
        set_random_seed(seed)
        train = expected_fewshot(full.train_x, 4)
        val = expected_fewshot(full.val, 4)
        got = load(tmp_path, "Caltech101", shots=4, seed=seed).dataset
        assert rel(got, got.train_x) == rel(full, train) and rel(got, got.val) == rel(full, val)


SUBPROCESS_SAMPLES = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {repo!r})
    from tests.test_datasets import _fewshot_relpaths
    print(json.dumps({{s: _fewshot_relpaths({root!r}, "Caltech101", 4, s) for s in (1, 2, 3)}}))
""")


def test_fewshot_stable_across_runs_and_processes(tmp_path):
    write_dataset("Caltech101", str(tmp_path / "t"), per_class=PER_CLASS)
    fewshot_dir = tmp_path / "t" / "caltech-101" / "split_fewshot"
    first = {s: _fewshot_relpaths(tmp_path / "t", "Caltech101", 4, s) for s in (1, 2, 3)}
    assert len({json.dumps(v) for v in first.values()}) == 3  # seeds differ
    cached = {s: _fewshot_relpaths(tmp_path / "t", "Caltech101", 4, s) for s in (1, 2, 3)}  # from the pickles
    assert cached == first
    shutil.rmtree(fewshot_dir)
    again = {s: _fewshot_relpaths(tmp_path / "t", "Caltech101", 4, s) for s in (1, 2, 3)}  # resampled
    assert again == first
    shutil.rmtree(fewshot_dir)
    out = subprocess.run([sys.executable, "-c", SUBPROCESS_SAMPLES.format(repo=REPO, root=str(tmp_path / "t"))],
                         capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    other = {int(k): tuple(map(list, v)) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
    assert other == {s: tuple(map(list, v)) for s, v in first.items()}


FAKE_DASSL_DATUM = textwrap.dedent("""
    class Datum:
        def __init__(self, impath="", label=0, domain=0, classname=""):
            self._impath = impath
            self._label = label
            self._domain = domain
            self._classname = classname
""")

WRITE_DASSL_PICKLE = textwrap.dedent("""
    import json, pickle, sys
    sys.path.insert(0, sys.argv[1])
    from dassl.data.datasets.base_dataset import Datum
    spec = json.load(open(sys.argv[2]))
    data = {k: [Datum(impath=p, label=y, classname=c) for p, y, c in v] for k, v in spec["data"].items()}
    with open(spec["out"], "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
""")


def _write_dassl_pickle(tmp_path, data, out):
    """Pickle ``data`` ({key: [(impath, label, classname)]}) with a Datum class from ``dassl.data.datasets.base_dataset``."""
    fake = tmp_path / "fake_dassl"
    pkg = fake / "dassl" / "data" / "datasets"
    pkg.mkdir(parents=True, exist_ok=True)
    for p in (fake / "dassl", fake / "dassl" / "data", pkg):
        (p / "__init__.py").write_text("")
    (pkg / "base_dataset.py").write_text(FAKE_DASSL_DATUM)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"data": data, "out": str(out)}))
    subprocess.run([sys.executable, "-c", WRITE_DASSL_PICKLE, str(fake), str(spec)], check=True)
    assert b"dassl.data.datasets.base_dataset" in out.read_bytes()


def test_dassl_fewshot_pickle_loads_and_gives_its_samples(tmp_path):
    root = tmp_path / "data"
    write_dataset("OxfordPets", str(root), per_class=PER_CLASS)
    full = load(root, "OxfordPets").dataset
    set_random_seed(11)
    train, val = expected_fewshot(full.train_x, 2), expected_fewshot(full.val, 2)
    # CoOp wrote absolute paths on another machine: they must be re-rooted onto this DATASET.ROOT.
    old = "/home/someone/DATA/oxford_pets/"

    def rows(items):
        return [[old + os.path.relpath(d.impath, full.dataset_dir), d.label, d.classname] for d in items]

    out = root / "oxford_pets" / "split_fewshot" / "shot_2-seed_1.pkl"
    out.parent.mkdir(parents=True)
    _write_dassl_pickle(tmp_path, {"train": rows(train), "val": rows(val)}, out)
    assert "dassl" not in sys.modules
    ds = load(root, "OxfordPets", shots=2, seed=1).dataset
    assert rel(ds, ds.train_x) == rel(full, train) and rel(ds, ds.val) == rel(full, val)
    assert all(os.path.isfile(d.impath) for d in ds.train_x)


def test_dassl_imagenet_preprocessed_pickle_is_used_as_is(tmp_path):
    root = tmp_path / "data"
    write_dataset("ImageNet", str(root), per_class=6)
    ours = load(root, "ImageNet").dataset
    assert not (root / "imagenet" / "preprocessed.pkl").exists()  # CoOp's name: never written by us
    # A CoOp tree listed its images in file-system order; the pickle's order must be kept.
    reversed_train = [[d.impath, d.label, d.classname] for d in reversed(ours.train_x)]
    test = [[d.impath, d.label, d.classname] for d in ours.test]
    _write_dassl_pickle(tmp_path, {"train": reversed_train, "test": test}, root / "imagenet" / "preprocessed.pkl")
    ds = load(root, "ImageNet", shots=2, seed=4).dataset
    set_random_seed(4)
    want = expected_fewshot(list(reversed(ours.train_x)), 2)
    assert rel(ds, ds.train_x) == rel(ours, want)
    assert rel(ds, ds.test) == rel(ours, ours.test)


def test_unexpected_pickle_content_is_refused(tmp_path):
    write_dataset("DescribableTextures", str(tmp_path), per_class=PER_CLASS)
    cache = tmp_path / "dtd" / "split_fewshot" / "shot_1-seed_1.pkl"
    cache.parent.mkdir()
    cache.write_bytes(pickle.dumps({"train": [os.system]}))
    with pytest.raises(datasets.DatasetFileError, match="unexpected object posix.system"):
        load(tmp_path, "DescribableTextures", shots=1)


# ------------------------------------------------------------------------------------------------------------
# Class subsampling
# ------------------------------------------------------------------------------------------------------------
def test_subsample_base_and_new(tmp_path):
    write_dataset("Caltech101", str(tmp_path), num_classes=5, per_class=PER_CLASS)
    names = expected_classnames("Caltech101", 5)
    base = load(tmp_path, "Caltech101", shots=2, subsample="base").dataset
    new = load(tmp_path, "Caltech101", shots=2, subsample="new").dataset
    assert base.classnames == names[:3] and new.classnames == names[3:]
    for ds, n in ((base, 3), (new, 2)):
        for items in (ds.train_x, ds.val, ds.test):
            assert sorted(per_class(items)) == list(range(n))
            assert all(d.classname == ds.classnames[d.label] for d in items)
    full = load(tmp_path, "Caltech101", shots=2).dataset
    assert rel(base, base.train_x) + rel(new, new.train_x) == \
        [(p, y if y < 3 else y - 3, c) for p, y, c in rel(full, full.train_x)]


# ------------------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------------------
def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load(tmp_path, "Caltech101")
    message = str(err.value)
    assert str(tmp_path / "caltech-101") in message and "DATASETS.md#caltech101" in message
    assert isinstance(err.value, FileNotFoundError)


@pytest.mark.parametrize("name, remove, anchor", [
    ("OxfordPets", "annotations/trainval.txt", "oxfordpets"),
    ("StanfordCars", "devkit/cars_meta.mat", "stanfordcars"),
    ("OxfordFlowers", "cat_to_name.json", "oxfordflowers"),
    ("FGVCAircraft", "variants.txt", "fgvcaircraft"),
    ("ImageNet", "classnames.txt", "imagenet"),
    ("Food101", "images", "food101"),
])
def test_missing_required_file(tmp_path, name, remove, anchor):
    write_dataset(name, str(tmp_path), per_class=PER_CLASS, with_split_file=False)
    target = tmp_path / DATASET_FOLDERS[name] / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        load(tmp_path, name)
    assert str(target) in str(err.value) and f"DATASETS.md#{anchor}" in str(err.value)


def test_variant_without_classnames(tmp_path):
    write_dataset("ImageNetSketch", str(tmp_path), per_class=2)
    (tmp_path / "imagenet" / "classnames.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="classnames.txt"):
        load(tmp_path, "ImageNetSketch")


def test_variant_reads_its_own_classnames_copy(tmp_path):
    write_dataset("ImageNetSketch", str(tmp_path), per_class=2)
    shutil.move(str(tmp_path / "imagenet" / "classnames.txt"), str(tmp_path / "imagenet-sketch" / "classnames.txt"))
    assert load(tmp_path, "ImageNetSketch").dataset.classnames == expected_classnames("ImageNetSketch", 4)


def test_split_file_listing_missing_images(tmp_path):
    write_dataset("EuroSAT", str(tmp_path), per_class=PER_CLASS)
    with open(tmp_path / "eurosat" / "split_zhou_EuroSAT.json") as f:
        split = json.load(f)
    gone = [split["test"][i][0] for i in (0, 7, 13)]
    for relpath in gone:
        os.remove(tmp_path / "eurosat" / "2750" / relpath)
    with pytest.raises(MissingImagesError) as err:
        load(tmp_path, "EuroSAT", shots=2)
    message = str(err.value)
    assert "3 of 80 images" in message and all(os.path.basename(g) in message for g in gone)
    assert "split_zhou_EuroSAT.json" in message
    assert not (tmp_path / "eurosat" / "split_fewshot").exists()  # failed before anything else


def test_stale_fewshot_pickle_is_reported(tmp_path):
    """A CoOp few-shot pickle listing an image that is gone stops the run, naming the pickle."""
    write_dataset("DescribableTextures", str(tmp_path), per_class=PER_CLASS)
    ds = load(tmp_path, "DescribableTextures").dataset
    rows = [[d.impath, d.label, d.classname] for d in ds.train_x[:8]]
    out = tmp_path / "dtd" / "split_fewshot" / "shot_2-seed_1.pkl"
    out.parent.mkdir()
    _write_dassl_pickle(tmp_path, {"train": rows, "val": rows[:4]}, out)
    os.remove(ds.train_x[0].impath)
    with open(tmp_path / "dtd" / "split_zhou_DescribableTextures.json") as f:
        split = json.load(f)
    split["train"] = [r for r in split["train"] if not ds.train_x[0].impath.endswith(r[0])]
    with open(tmp_path / "dtd" / "split_zhou_DescribableTextures.json", "w") as f:
        json.dump(split, f)
    with pytest.raises(MissingImagesError, match="shot_2-seed_1.pkl"):
        load(tmp_path, "DescribableTextures", shots=2)


def test_more_shots_than_images_takes_all_and_logs_once(tmp_path, caplog):
    write_dataset("Caltech101", str(tmp_path), per_class=PER_CLASS)
    with caplog.at_level(logging.INFO):
        ds = load(tmp_path, "Caltech101", shots=50).dataset
    assert per_class(ds.train_x) == {y: 10 for y in range(4)} and per_class(ds.val) == {y: 4 for y in range(4)}
    assert len([r for r in caplog.records if "fewer than" in r.getMessage()]) == 1


def test_corrupt_image_is_named_by_the_loader(tmp_path):
    from engine.errors import CorruptImageError

    write_dataset("Food101", str(tmp_path), per_class=PER_CLASS)
    dm = load(tmp_path, "Food101")
    victim = dm.dataset.test[3].impath
    with open(victim, "wb") as f:
        f.write(b"not a jpeg")
    with pytest.raises(CorruptImageError, match=os.path.basename(victim)):
        for _ in dm.test_loader:
            pass


# ------------------------------------------------------------------------------------------------------------
# Templates, config, registry, download helper
# ------------------------------------------------------------------------------------------------------------
TEMPLATES = {
    "OxfordPets": "a photo of a {}, a type of pet.", "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.", "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.", "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.", "SUN397": "a photo of a {}.", "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.", "ImageNet": "a photo of a {}.", "ImageNetV2": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.", "ImageNetA": "a photo of a {}.", "ImageNetR": "a photo of a {}.",
}


def test_templates_registry_and_configs():
    assert set(TEMPLATES) == set(DATASET_NAMES) == set(datasets.BENCHMARK_DATASETS)
    for name, template in TEMPLATES.items():
        assert name in DATASET_REGISTRY.registered_names()
        assert dataset_templates(name) == (template,)
    assert isinstance(IMAGENET_TEMPLATES_SELECT, tuple) and len(IMAGENET_TEMPLATES_SELECT) == 7
    assert "a origami {}." in IMAGENET_TEMPLATES_SELECT
    cfg = get_cfg_default()
    add_dataset_config(cfg)
    cfg.DATASET.SUBSAMPLE_CLASSES = "base"
    add_dataset_config(cfg)
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "base"
    import yaml

    config_dir = os.path.join(REPO, "configs", "datasets")
    names = {yaml.safe_load(open(os.path.join(config_dir, f)))["DATASET"]["NAME"] for f in os.listdir(config_dir)}
    assert names == set(DATASET_NAMES) and len(os.listdir(config_dir)) == 15


def test_download_splits_with_mocked_gdown(tmp_path, monkeypatch):
    import gdown

    calls = []

    def fake_download(id=None, output=None, quiet=False, **kwargs):
        calls.append(id)
        with open(output, "w") as f:
            f.write("{}")
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    assert download.main(["splits", "--root", str(tmp_path), "--dataset", "OxfordFlowers", "Caltech101",
                          "FGVCAircraft"]) == 0
    assert calls == ["1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT", "1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0",
                     "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"]
    assert (tmp_path / "caltech-101" / "split_zhou_Caltech101.json").is_file()
    assert (tmp_path / "oxford_flowers" / "cat_to_name.json").is_file()
    assert download.main(["splits", "--root", str(tmp_path), "--dataset", "Caltech101"]) == 0
    assert len(calls) == 3  # existing files are kept
    ids = {fid for files in download.SPLIT_FILES.values() for _, fid in files}
    assert len(ids) == 11 and set(download.SPLIT_FILES) | set(download.NO_SPLIT_FILE) == set(DATASET_NAMES)


def test_download_offline_fails_clearly(tmp_path, monkeypatch, caplog):
    import gdown

    def offline(**kwargs):
        raise ConnectionError("Failed to resolve 'drive.google.com'")

    monkeypatch.setattr(gdown, "download", offline)
    with caplog.at_level(logging.ERROR):
        assert download.main(["splits", "--root", str(tmp_path), "--dataset", "EuroSAT"]) == 1
    message = caplog.text
    assert "Are you online?" in message and "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o" in message
    assert not list((tmp_path / "eurosat").iterdir())  # no partial file left
    with pytest.raises(SystemExit):
        download.main(["splits"])  # --root is required
