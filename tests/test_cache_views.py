"""What each kind of run encodes: paper-exact training views, prefixes of longer entries, eval-only runs,
ImageNet's identical val/test lists, Tip-Adapter on a test-only ImageNet variant."""
import os

import pytest
import torch

from engine import build_transform
from features import FeatureCacheError, extract_features, list_entries
from tests.conftest import make_trainer, train_args
from tests.fixtures.synthetic_datasets import write_dataset


def _views_entries(cache):
    return [e for e in list_entries(cache) if e["key"].get("kind") == "views"]


def _trainer(data_root, clip, out, cache, epochs=3, views=0, extra=(), **kw):
    argv = train_args(data_root, clip, out, epochs=epochs, **kw) + ["FEATURE_CACHE.DIR", cache,
                                                                    "FEATURE_CACHE.NUM_VIEWS", str(views), *extra]
    return make_trainer(argv)


def test_view_k_is_the_same_whatever_the_number_of_views(data_root, tiny_clip, tmp_path):
    t = _trainer(data_root, tiny_clip, str(tmp_path / "t"), str(tmp_path / "c"))
    items, tfm = t.dm.dataset.train_x[:5], build_transform(t.cfg, is_train=True)
    args = dict(transform=tfm, seed=3, batch_size=4, num_workers=0, desc="t")
    five = extract_features(t.clip, items, views=5, **args)
    three = extract_features(t.clip, items, views=3, **args)
    rest = extract_features(t.clip, items, views=5, start=3, **args)
    torch.testing.assert_close(torch.cat([three, rest]), five)


@pytest.mark.slow
def test_paper_protocol_by_default_and_reuse_across_alpha_method_and_shorter_runs(data_root, tiny_clip, tmp_path):
    cache = str(tmp_path / "cache")
    first = _trainer(data_root, tiny_clip, str(tmp_path / "a"), cache, epochs=3)
    first.train()
    info = first.cache_info
    n_train = len(first.dm.dataset.train_x)
    assert info["train_views"] == 3 and info["paper_protocol"] and info["splits"]["train"]["encoded_views"] == 3
    assert [e["views"] for e in _views_entries(cache)] == [3]
    # Another alpha, another method with the same transform, a shorter run: nothing to encode.
    for out, trainer, epochs, extra in (("b", "TaskRes", 3, ["TRAINER.TaskRes.RESIDUAL_SCALE", "1.0"]),
                                        ("c", "CLIP_Adapter", 3, []), ("d", "TaskRes", 2, [])):
        t = _trainer(data_root, tiny_clip, str(tmp_path / out), cache, epochs=epochs, trainer=trainer, extra=extra)
        t.train()
        assert t.cache_info["encoded_views"] == 0, (trainer, epochs, t.cache_info)
        assert t.cache_info["train_views"] == epochs
    # A longer run encodes only the views it lacks, and its first views are the stored ones.
    longer = _trainer(data_root, tiny_clip, str(tmp_path / "e"), cache, epochs=5)
    longer.train()
    assert longer.cache_info["splits"]["train"]["encoded_views"] == 2
    assert longer.cache_info["encoded_views"] == 2 * n_train
    (entry,) = _views_entries(cache)
    assert entry["views"] == 5


@pytest.mark.slow
def test_fast_mode_is_recorded(data_root, tiny_clip, tmp_path):
    t = _trainer(data_root, tiny_clip, str(tmp_path / "a"), str(tmp_path / "c"), epochs=3, views=2)
    t.train()
    assert t.cache_info["train_views"] == 2 and not t.cache_info["paper_protocol"]
    assert t.cache_info["num_views_option"] == 2 and "fast" in t.cache_info["protocol"]


def test_eval_only_run_encodes_only_the_split_it_evaluates(data_root, tiny_clip, tmp_path):
    cache = str(tmp_path / "cache")
    t = _trainer(data_root, tiny_clip, str(tmp_path / "a"), cache)
    assert list_entries(cache) == []  # building the trainer encodes nothing
    t.test()
    assert set(t.cache_info["splits"]) == {"test"}
    (entry,) = list_entries(cache)
    assert entry["views"] == 1 and entry["key"]["num_items"] == len(t.dm.dataset.test)


def test_imagenet_test_list_is_never_a_val_loader_and_is_encoded_once(data_root, tiny_clip, tmp_path):
    """ImageNet's val list *is* its test list: no val loader is built from it (the test set selects nothing),
    and its test features are encoded once and shared by every seed."""
    cache = str(tmp_path / "cache")
    t = _trainer(data_root, tiny_clip, str(tmp_path / "a"), cache, dataset="imagenet")
    assert [d.impath for d in t.dm.dataset.val] == [d.impath for d in t.dm.dataset.test]
    with pytest.raises(RuntimeError, match="no validation split"):
        t.test("val")
    t.test("test")
    assert t.cache_info["encoded_views"] == len(t.dm.dataset.test)
    assert len(list_entries(cache)) == 1
    other = _trainer(data_root, tiny_clip, str(tmp_path / "b"), cache, dataset="imagenet", seed=2)
    other.test("test")
    assert other.cache_info["encoded_views"] == 0  # another seed, the same list: shared


@pytest.fixture(scope="module")
def variant_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("variants"))
    write_dataset("ImageNet", root, num_classes=4, per_class=12, image_size=32)
    write_dataset("ImageNetV2", root, num_classes=4, per_class=3, image_size=32)
    return root


@pytest.mark.slow
def test_tip_adapter_on_an_imagenet_variant_encodes_no_augmented_views(variant_root, tiny_clip, tmp_path):
    import train

    cache = str(tmp_path / "cache")
    common = ["--config-file", "configs/trainers/TipAdapter/rn50.yaml", "--cache-dir", cache]
    trained = str(tmp_path / "imagenet")
    argv = train_args(variant_root, tiny_clip, trained, trainer="TipAdapter", dataset="imagenet", extra=common)
    train.main(argv)
    before = {e["path"] for e in list_entries(cache)}
    argv = train_args(variant_root, tiny_clip, str(tmp_path / "v2"), trainer="TipAdapter", dataset="imagenetv2",
                      extra=common + ["--eval-only", "--model-dir", trained, "--load-epoch", "1"])
    t = make_trainer(argv)
    t.load_model(trained, epoch=1)
    t.test()
    new = [e for e in list_entries(cache) if e["path"] not in before]
    assert [e["key"]["kind"] for e in new] == ["plain"]  # its test set, one view; no augmented views
    assert new[0]["key"]["num_items"] == len(t.dm.dataset.test)
    assert t.cache_info["splits"].get("train", {"views": 0})["views"] == 0
    taskres = make_trainer(train_args(variant_root, tiny_clip, str(tmp_path / "tr"), dataset="imagenetv2",
                                      extra=["--cache-dir", cache]))
    with pytest.raises(FeatureCacheError, match="test-only"):
        taskres.use_train_features()  # training on a test set is refused


def test_prune_and_du(data_root, tiny_clip, tmp_path):
    from features import prune
    from features.__main__ import main

    cache = str(tmp_path / "cache")
    t = _trainer(data_root, tiny_clip, str(tmp_path / "a"), cache)
    t.test()
    t.use_train_features()
    assert len(list_entries(cache)) == 2
    main(["du", cache])
    assert len(prune(cache, older_than_days=1)) == 0
    old = list_entries(cache)[0]["path"]
    os.utime(old, (0, 0))
    removed = prune(cache, older_than_days=1)
    assert [e["path"] for e in removed] == [old] and not os.path.exists(old)
    assert len(prune(cache, keep_gb=0)) == 1 and list_entries(cache) == []
