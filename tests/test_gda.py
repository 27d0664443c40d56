"""GDA through the project's entry points: fit from cached views, alpha on val only, tracks, eval-only, launcher."""
import json
import os

import pytest
import torch

import train
from tests.conftest import all_logits, make_trainer, run_launcher, train_args
from trainers.gda import ALPHA_GRID, VALFREE_ALPHA

CONFIG = "configs/trainers/GDA/rn50.yaml"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _args(root, clip, out, cache, dataset="caltech101", shots=2, extra=(), flags=()):
    return train_args(root, clip, str(out), trainer="GDA", dataset=dataset, shots=shots, extra=(
        *flags, "--config-file", CONFIG, "--cache-dir", str(cache), "TRAINER.GDA.AUGMENT_EPOCH", "3", *extra))


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_fit_uses_every_view_and_alpha_changes_only_the_mix(data_root, tiny_clip, tmp_path):
    trainer = make_trainer(_args(data_root, tiny_clip, tmp_path / "a", tmp_path / "cache"))
    assert trainer.templates == ("a photo of a {}.",)
    assert trainer.view_transform() is not None and trainer.crop_scale() == (0.5, 1.0)
    trainer.fit()
    views = trainer.feature_source.get("train", trainer.dm.dataset.train_x, trainer.view_transform(), 3,
                                    trainer.spec.cache.keys.seed(trainer.cfg.SEED))
    assert views["encoded_views"] == 0  # the views the fit read
    assert views["features"].shape[0] == 3  # three views of each image, each a sample (not averaged)
    head = trainer.head
    assert head.weight.abs().sum() > 0 and float(head.alpha) in ALPHA_GRID
    logits, _ = all_logits(trainer)
    with torch.no_grad():
        head.alpha.fill_(0.0)
        zero_shot, _ = all_logits(trainer)
    assert not torch.allclose(logits, zero_shot)


def test_views_are_tip_adapters_keys_views(data_root, tiny_clip, tmp_path):
    """Same crop, count and seed stream as Tip-Adapter's keys: a grid running both encodes the views once."""
    cache = tmp_path / "cache"
    make_trainer(_args(data_root, tiny_clip, tmp_path / "g", cache)).fit()
    tip = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "t"), trainer="TipAdapter", shots=2, extra=(
        "--config-file", "configs/trainers/TipAdapter/rn50.yaml", "--cache-dir", str(cache),
        "TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "3")))
    tip.build_cache()
    assert tip.cache_info["splits"]["train"]["encoded_views"] == 0 and tip.cache_info["splits"]["train"]["views"] == 3


def test_imagenet_views_use_its_own_crop_and_templates(data_root, tiny_clip, tmp_path):
    from trainers.templates import imagenet_select

    trainer = make_trainer(_args(data_root, tiny_clip, tmp_path / "i", tmp_path / "cache", dataset="imagenet"))
    assert trainer.crop_scale() == (0.08, 1.0) and trainer.templates == imagenet_select()
    bad = make_trainer(_args(data_root, tiny_clip, tmp_path / "b", tmp_path / "cache",
                             extra=("TRAINER.GDA.CROP_SCALE", "(0.5, 2.0)")))
    with pytest.raises(ValueError, match="CROP_SCALE"):
        bad.crop_scale()


def test_run_records_alpha_and_eval_only_reproduces_it(data_root, tiny_clip, tmp_path):
    out = tmp_path / "run"
    train.main(_args(data_root, tiny_clip, out, tmp_path / "cache"))
    metrics = _metrics(out)
    extra = metrics["extra"]
    assert metrics["method"] == "GDA" and extra["search_alpha"] is True and extra["alpha"] in ALPHA_GRID
    assert list(extra["val_accuracy_by_alpha"]) == [str(a) for a in ALPHA_GRID]
    assert metrics["tracks"] == ["paper"]  # it read val: its result counts in its own track only
    again = tmp_path / "eval"
    train.main(_args(data_root, tiny_clip, again, tmp_path / "cache",
                     flags=("--eval-only", "--model-dir", str(out), "--load-epoch", "1")))
    assert _metrics(again)["accuracy"] == pytest.approx(metrics["accuracy"])
    assert _metrics(again)["extra"]["alpha"] == extra["alpha"]


@pytest.mark.parametrize("dataset, track, source", [("caltech101", "paper", "val_split"),
                                                    ("imagenet", "paper", "heldout_paper"),
                                                    ("caltech101", "fewshot_val", "fewshot_val")])
def test_alpha_is_chosen_on_what_the_original_used_never_test(data_root, tiny_clip, tmp_path, dataset, track, source):
    """The original searches the whole val split (ImageNet: its test set, replaced by held-out train images)."""
    out = tmp_path / "sel"
    train.main(_args(data_root, tiny_clip, out, tmp_path / "cache", dataset=dataset, extra=("DATASET.TRACK", track)))
    metrics = _metrics(out)
    assert metrics["read_validation"] and metrics["selection_data"]["source"] == source


def test_valfree_track_reads_no_val_and_uses_the_fixed_alpha(data_root, tiny_clip, tmp_path):
    out = tmp_path / "vf"
    train.main(_args(data_root, tiny_clip, out, tmp_path / "cache", extra=("DATASET.TRACK", "valfree")))
    metrics = _metrics(out)
    assert metrics["extra"]["alpha"] == VALFREE_ALPHA and metrics["extra"]["search_alpha"] is False
    assert "val" not in metrics["feature_cache_info"]["splits"]


@pytest.mark.slow
def test_launcher_runs_the_recipe(data_root, tiny_clip, tmp_path):
    metrics = run_launcher("GDA", "caltech101", 16, data_root, tiny_clip, tmp_path / "output", "TRAINER.GDA.AUGMENT_EPOCH 2")
    assert metrics["method"] == "GDA" and metrics["shots"] == 16 and metrics["extra"]["alpha"] in ALPHA_GRID
    assert "_16shots" in os.path.basename(os.path.dirname(os.path.dirname(metrics["path"])))  # (+ the modified run's hash)


def test_declaration():
    from trainers import method_spec

    spec = method_spec("GDA")
    assert spec.training_free and spec.selects_on_val and spec.label == "GDA" and spec.table_order == 100
    assert spec.cache.train_views == "none" and spec.cache.keys.count_key == "AUGMENT_EPOCH" and spec.trainable == ()


def test_an_imagenet_fit_evaluates_on_a_variant_which_it_cannot_fit_on(tmp_path, tiny_clip):
    from features import FeatureCacheError
    from tests.fixtures.synthetic_datasets import write_dataset

    root = str(tmp_path / "data")
    write_dataset("ImageNet", root, num_classes=3, per_class=8, image_size=32)
    write_dataset("ImageNetV2", root, num_classes=3, per_class=4, image_size=32)
    trainer = make_trainer(_args(root, tiny_clip, tmp_path / "v2", tmp_path / "cache", dataset="imagenetv2"))
    with pytest.raises(FeatureCacheError, match="test-only"):
        trainer.fit()
    out = tmp_path / "in"
    train.main(_args(root, tiny_clip, out, tmp_path / "cache", dataset="imagenet"))
    variant = tmp_path / "eval-v2"
    train.main(_args(root, tiny_clip, variant, tmp_path / "cache", dataset="imagenetv2",
                     flags=("--eval-only", "--model-dir", str(out), "--load-epoch", "1")))
    assert _metrics(variant)["extra"]["alpha"] == _metrics(out)["extra"]["alpha"]
    assert _metrics(variant)["feature_cache_info"]["splits"].keys() == {"test"}  # no view, no val read


def test_grid_dry_run_plans_gda(tmp_path, capsys):
    from scripts.reproduce import grid

    report = grid.main(["--methods", "GDA", "--datasets", "caltech101", "imagenet", "--shots", "1", "16",
                        "--seeds", "1", "--data", str(tmp_path), "--output", str(tmp_path / "out"), "--dry-run"])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[run]")]
    assert len(report.planned) == len(printed) == 4 and not (tmp_path / "out").exists()
    assert all("--trainer GDA" in line and CONFIG in line for line in printed)
