"""ProLIP in the project: its declaration, zero-shot at initialisation, the pre-projection cache against the
encoder run every step, and the launcher with its recipe."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import all_logits, make_trainer, run_launcher, train_args
from trainers import method_spec
from trainers.text_classifier import build_zero_shot_classifier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/trainers/ProLIP/rn50.yaml"


def _args(root, clip, out, extra=(), epochs=2, shots=4, size=32, opts=()):
    """train_args (batches of 8) with ProLIP's config; ``opts``: KEY VALUE pairs that override train_args' own."""
    return train_args(root, clip, str(out), trainer="ProLIP", shots=shots, epochs=epochs,
                      extra=["--config-file", CONFIG, *extra]) + ["INPUT.SIZE", f"({size}, {size})", *opts]


def test_declaration_is_the_published_validation_free_setting():
    spec = method_spec("ProLIP")
    assert spec.label == "ProLIP" and spec.selects_on_val is False and spec.trainable == ("weight",)
    assert spec.cache.image_features == "pre_projection" and "val" not in spec.cache.splits
    assert spec.settings("caltech101", 16) == spec.settings("imagenet", 1) == {
        "OPTIM.LR": 1e-5, "OPTIM.MAX_EPOCH": 300, "TRAINER.PROLIP.LAMBDA_RULE": "1/N"}


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_at_initialisation_it_is_zero_shot_clip_from_the_cache_and_from_images(data_root, tiny_clip, tiny_clip_rn,
                                                                                kind, tmp_path):
    clip, size = (tiny_clip, 32) if kind == "vit" else (tiny_clip_rn, 64)
    cached = make_trainer(_args(data_root, clip, tmp_path / "c", size=size))
    uncached = make_trainer(_args(data_root, clip, tmp_path / "u", extra=["--no-cache"], size=size))
    assert cached.model.head.lam == pytest.approx(1 / 4)
    lc, yc = all_logits(cached)      # cached pre-projection features (fp16), projected by W0
    lu, yu = all_logits(uncached)    # images through the encoder, stopped before the projection
    assert torch.equal(yc, yu)
    torch.testing.assert_close(lc, lu, atol=0.05, rtol=1e-2)
    backbone = uncached.clip
    text = F.normalize(build_zero_shot_classifier(backbone, uncached.classnames, uncached.templates,
                                                  normalize_each=True), dim=-1)
    with torch.no_grad():
        zero_shot = torch.cat([100.0 * F.normalize(backbone.encode_image(uncached.parse_batch_test(b)[0]), dim=-1)
                               @ text.t() for b in uncached.test_loader])
    torch.testing.assert_close(lu, zero_shot, atol=1e-3, rtol=1e-4)


@pytest.mark.slow
def test_training_from_the_cache_equals_training_with_the_encoder_every_step(data_root, tiny_clip, tmp_path):
    """Same inputs both ways (a deterministic train transform), full batch: the trained projection and the test
    logits agree to the cache's fp16 rounding, and the predictions are the same."""
    import train

    same = ["INPUT.TRANSFORMS", "['normalize']", "DATALOADER.TRAIN_X.BATCH_SIZE", "1000000", "OPTIM.LR", "1e-3",
            "TRAINER.PROLIP.PREC", "fp32"]
    runs, logits = {}, {}
    for name, extra in (("cache", []), ("images", ["--no-cache"])):
        out = tmp_path / name
        runs[name] = train.main(_args(data_root, tiny_clip, out, extra=extra, opts=same, epochs=10))
        trainer = make_trainer(_args(data_root, tiny_clip, out / "eval", extra=extra, opts=same))
        trainer.load_model(str(out), epoch=10)
        logits[name] = all_logits(trainer)[0]
        runs[name]["weight"] = trainer.model.head.weight.detach().clone()
    w0 = trainer.model.head.weight0
    moved = (runs["cache"]["weight"] - w0).norm()
    assert moved > 1e-2  # training changed W
    assert (runs["cache"]["weight"] - runs["images"]["weight"]).norm() < 2e-3 * moved  # fp16 cache (measured 3e-4)
    torch.testing.assert_close(logits["cache"], logits["images"], atol=0.05, rtol=1e-2)
    assert torch.equal(logits["cache"].argmax(1), logits["images"].argmax(1))
    assert runs["cache"]["accuracy"] == runs["images"]["accuracy"]
    info = json.loads((tmp_path / "cache" / "metrics.json").read_text())["feature_cache_info"]
    assert info["paper_protocol"] and info["splits"]["train"]["views"] == 1  # deterministic: one view serves all


@pytest.mark.slow
def test_launcher_runs_the_recipe(data_root, tiny_clip, tmp_path):
    metrics = run_launcher("ProLIP", "caltech101", 16, data_root, tiny_clip, tmp_path / "output", "TRAIN.PRINT_FREQ 1000",
                           INPUT_SIZE="32")
    assert metrics["method"] == "ProLIP" and metrics["epochs"] == 300 and metrics["shots"] == 16
    assert metrics["extra"]["lambda"] == pytest.approx(1 / 16)
    assert metrics["feature_cache_info"]["train_views"] == 300 and metrics["feature_cache_info"]["paper_protocol"]


def test_grid_cost_counts_pre_projection_entries_apart(data_root, tiny_clip, tmp_path):
    """ProLIP's views are other features of the same images: the cost model must not count them as TaskRes's."""
    from scripts.reproduce.cost import run_needs

    prolip = make_trainer(_args(data_root, tiny_clip, tmp_path / "p")).cfg
    taskres = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "t"))).cfg
    ids = {name: {eid for eid, _, _ in run_needs(cfg)[0]} for name, cfg in (("ProLIP", prolip), ("TaskRes", taskres))}
    assert ids["ProLIP"] and not ids["ProLIP"] & ids["TaskRes"]
    assert all("(pre-projection)" in eid[1] for eid in ids["ProLIP"])
