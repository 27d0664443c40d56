"""The feature cache: keys, corruption, concurrency, and agreement with the image path."""
import os
import subprocess
import sys

import pytest
import torch

from engine import Datum, build_transform, get_cfg_default
from features import FeatureStore, cache_key, extract_features
from tests.conftest import all_logits, make_trainer, train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def trainer(data_root, tiny_clip, tmp_path):
    return make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "t")))


def _tfm(**input_overrides):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (32, 32)
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    for k, v in input_overrides.items():
        setattr(cfg.INPUT, k, v)
    return build_transform(cfg, is_train=True)


def test_cache_key_changes_with_everything_that_changes_features(trainer, data_root, tiny_clip_rn, tmp_path):
    items = trainer.dm.dataset.train_x
    clip = trainer.clip
    base = cache_key(clip, items, _tfm(), seed=1)
    other_clip = make_trainer(train_args(data_root, tiny_clip_rn, str(tmp_path / "rn"))).clip
    variants = [
        cache_key(other_clip, items, _tfm(), 1),                   # backbone
        cache_key(clip, items, _tfm(), 2),                         # seed
        cache_key(clip, items[:-4], _tfm(), 1),                    # shots (other items)
        cache_key(clip, items, _tfm(RRCROP_SCALE=(0.5, 1.0)), 1),  # transforms
        cache_key(clip, items, _tfm(SIZE=(40, 40)), 1),            # input size
    ]
    store = FeatureStore(str(tmp_path / "c"))
    paths = {store.entry_dir(k) for k in [base] + variants}
    assert len(paths) == 1 + len(variants)
    assert store.entry_dir(cache_key(clip, items, _tfm(), 1)) == store.entry_dir(base)
    # Neither the split's name nor the number of views is part of the key: a prefix of an entry is valid.
    assert "views" not in base and "split" not in base


def test_same_weights_under_another_file_name_differ_only_by_name(trainer):
    """The weights' content is hashed: editing one weight changes the key."""
    clip = trainer.clip
    before = clip.fingerprint()
    clip._fingerprint = None
    with torch.no_grad():
        clip.model.logit_scale.add_(1e-3)
    assert clip.fingerprint() != before


def test_views_are_seeded_per_image_and_view(trainer):
    items = trainer.dm.dataset.train_x[:6]
    args = dict(transform=_tfm(), views=2, batch_size=4, num_workers=0, desc="t")
    a = extract_features(trainer.clip, items, seed=1, **args)
    b = extract_features(trainer.clip, list(reversed(items)), seed=1, **args)
    c = extract_features(trainer.clip, items, seed=2, **args)
    assert a.shape == (2, 6, trainer.clip.embed_dim) and a.dtype == torch.float16
    torch.testing.assert_close(a, b.flip(1))  # same view of the same image whatever the order
    assert not torch.equal(a[0], a[1])         # views differ
    assert not torch.equal(a, c)               # seeds differ


def test_corrupted_or_truncated_cache_file_is_rebuilt(trainer, tmp_path):
    store = FeatureStore(str(tmp_path / "c"))
    key = {"kind": "views", "n": 1}
    calls = []

    def build(start, stop, first):
        calls.append((start, stop))
        yield 0, torch.randn(stop - start, 5, 4).half()

    first = store.get(key, build, 2, torch.arange(5))
    (path,) = [os.path.join(first["path"], f) for f in os.listdir(first["path"]) if f.startswith("views-")]
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])  # truncated
    second = store.get(key, build, 2, torch.arange(5))
    assert calls == [(0, 2), (0, 2)] and second["seconds"] > 0
    entry = torch.load(path, weights_only=True)
    entry["features"][1, 0, 0] += 1  # silently corrupted values: checksum mismatch
    torch.save(entry, path)
    store.get(key, build, 2, torch.arange(5))
    assert len(calls) == 3
    again = store.get(key, build, 2, torch.arange(5))
    assert len(calls) == 3 and again["seconds"] == 0.0  # a valid file is reused
    assert first["features"].shape == again["features"].shape


def test_two_processes_filling_one_entry_both_finish_with_one_identical_file(data_root, tiny_clip, tmp_path):
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from tests.conftest import train_args, make_trainer\n"
        "t = make_trainer(train_args(sys.argv[2], sys.argv[3], sys.argv[4]) + ['FEATURE_CACHE.DIR', sys.argv[5]])\n"
        "t.use_train_features()\n"
        "print('ACC', t.test())\n"
    )
    cache = str(tmp_path / "shared_cache")
    procs = [subprocess.Popen([sys.executable, "-c", script, REPO, data_root, tiny_clip, str(tmp_path / f"o{i}"), cache],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    accs = [line for o in outs for line in o[0].splitlines() if line.startswith("ACC")]
    assert len(accs) == 2 and accs[0] == accs[1]
    entries = sorted(d for d in os.listdir(cache) if os.path.isdir(os.path.join(cache, d)))
    # test (val is never evaluated here, so never encoded) and the train views
    assert [d.split("-")[0] for d in entries] == ["plain", "views"]
    chunks = [f for d in entries for f in os.listdir(os.path.join(cache, d)) if f.endswith(".pt")]
    assert len(chunks) == 2  # each view encoded once: no second chunk from the other process
    assert not [f for d in entries for f in os.listdir(os.path.join(cache, d)) if f.startswith(".tmp")]


def test_cached_evaluation_equals_uncached_evaluation(data_root, tiny_clip, tmp_path):
    cached = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "c")))
    uncached = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "u"), extra=["--no-cache"]))
    lc, yc = all_logits(cached)
    lu, yu = all_logits(uncached)
    assert torch.equal(yc, yu)
    torch.testing.assert_close(lc, lu, atol=0.05, rtol=1e-2)  # features stored in fp16
    assert torch.equal(lc.argmax(1), lu.argmax(1))


@pytest.mark.slow
def test_taskres_from_cache_and_from_images_reach_comparable_accuracy(data_root, tiny_clip, tmp_path):
    import train

    fast = ["OPTIM.LR", "0.05", "TRAINER.TaskRes.PREC", "fp32"]
    cached = train.main(train_args(data_root, tiny_clip, str(tmp_path / "c"), epochs=20, shots=8, extra=fast))
    images = train.main(train_args(data_root, tiny_clip, str(tmp_path / "u"), epochs=20, shots=8,
                                   extra=["--no-cache"] + fast))
    zs = train.main(train_args(data_root, tiny_clip, str(tmp_path / "z"), trainer="ZeroshotCLIP"))
    assert cached["accuracy"] > zs["accuracy"] and images["accuracy"] > zs["accuracy"]
    assert abs(cached["accuracy"] - images["accuracy"]) <= 15.0  # 24 test images: one image is 4.2 points


@pytest.mark.slow
def test_second_method_on_the_same_data_pays_no_extraction(data_root, tiny_clip, tmp_path):
    import json

    import train

    cache = str(tmp_path / "cache")
    train.main(train_args(data_root, tiny_clip, str(tmp_path / "a"), extra=["--cache-dir", cache]))
    train.main(train_args(data_root, tiny_clip, str(tmp_path / "b"),
                          extra=["--cache-dir", cache, "TRAINER.TaskRes.RESIDUAL_SCALE", "1.0"]))
    first = json.load(open(tmp_path / "a" / "metrics.json"))["timings"]["extract_s"]
    second = json.load(open(tmp_path / "b" / "metrics.json"))["timings"]["extract_s"]
    assert first > 0 and second == 0.0


def test_missing_image_during_extraction_names_the_file(trainer, tmp_path):
    bad = [Datum(str(tmp_path / "gone.jpg"), 0, 0, "x")]
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        extract_features(trainer.clip, bad, _tfm(), 1, 0, 4, 0, "t")
