"""TaskRes and TaskRes*: equivalence with zero-shot CLIP at init, what trains, alpha, bases, checkpoints."""
import json

import pytest
import torch

import train
from engine import load_checkpoint
from tests.conftest import all_logits, make_trainer, train_args

# Learning on random tiny-CLIP features needs a larger step than the paper's 2e-3.
FAST = ["OPTIM.LR", "0.05", "TRAINER.TaskRes.PREC", "fp32"]


class PickledSchedulerObject:
    """Stands for the scheduler object Dassl pickles into its checkpoints (not loadable weights-only)."""


def _args(data_root, tiny_clip, out, trainer="TaskRes", epochs=2, extra=(), **kw):
    return train_args(data_root, tiny_clip, str(out), trainer=trainer, epochs=epochs, extra=list(extra), **kw)


def test_taskres_at_init_is_zero_shot_clip(data_root, tiny_clip, tmp_path):
    taskres = make_trainer(_args(data_root, tiny_clip, tmp_path / "a"))
    zeroshot = make_trainer(_args(data_root, tiny_clip, tmp_path / "b", trainer="ZeroshotCLIP"))
    lt, yt = all_logits(taskres)
    lz, yz = all_logits(zeroshot)
    assert torch.equal(yt, yz)
    torch.testing.assert_close(lt, lz, atol=1e-4, rtol=1e-4)
    assert taskres.templates == zeroshot.templates == ("a photo of a {}.",)


def test_imagenet_base_averages_select_templates_plus_default(data_root, tiny_clip, tmp_path):
    from datasets import IMAGENET_TEMPLATES_SELECT

    t = make_trainer(_args(data_root, tiny_clip, tmp_path / "in", dataset="imagenet", shots=2))
    assert t.templates == tuple(IMAGENET_TEMPLATES_SELECT) + ("a photo of a {}.",)
    assert len(t.templates) == 8


@pytest.mark.slow
def test_training_changes_only_the_residual_and_beats_zero_shot(data_root, tiny_clip, tmp_path):
    out = tmp_path / "run"
    zs = train.main(_args(data_root, tiny_clip, tmp_path / "zs", trainer="ZeroshotCLIP"))
    res = train.main(_args(data_root, tiny_clip, out, epochs=30, extra=FAST, shots=8))
    assert res["accuracy"] > zs["accuracy"] + 10
    ckpt = load_checkpoint(str(out / "prompt_learner" / "model.pth.tar-30"))
    assert set(ckpt["state_dict"]) == {"base_text_features", "text_feature_residuals"}
    assert ckpt["state_dict"]["text_feature_residuals"].abs().sum() > 0
    fresh = make_trainer(_args(data_root, tiny_clip, tmp_path / "fresh", shots=8))
    torch.testing.assert_close(ckpt["state_dict"]["base_text_features"],
                               fresh._models["prompt_learner"].base_text_features)
    assert ckpt["method"] == "TaskRes" and ckpt["shots"] == 8 and ckpt["seed"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(res["accuracy"]) and metrics["method"] == "TaskRes"


def test_only_the_residual_requires_grad(data_root, tiny_clip, tmp_path):
    t = make_trainer(_args(data_root, tiny_clip, tmp_path / "g"))
    head = t._models["prompt_learner"]
    assert [n for n, p in head.named_parameters() if p.requires_grad] == ["text_feature_residuals"]
    assert not any(p.requires_grad for p in t.clip.model.parameters())
    batch = next(iter(t.train_loader_x))
    x, y = t.parse_batch_train(batch)
    torch.nn.functional.cross_entropy(t.model(x), y).backward()
    assert head.text_feature_residuals.grad is not None and head.text_feature_residuals.grad.abs().sum() > 0


@pytest.mark.slow
def test_zero_residual_scale_leaves_predictions_unchanged(data_root, tiny_clip, tmp_path):
    t = make_trainer(_args(data_root, tiny_clip, tmp_path / "z", epochs=3,
                           extra=FAST + ["TRAINER.TaskRes.RESIDUAL_SCALE", "0.0"]))
    before, _ = all_logits(t)
    t.train()
    after, _ = all_logits(t)
    assert t.epoch == 2  # it did train three epochs
    torch.testing.assert_close(before, after)


def test_residual_gradient_scales_with_alpha(data_root, tiny_clip, tmp_path):
    grads = {}
    for alpha in ("0.5", "1.0"):
        t = make_trainer(_args(data_root, tiny_clip, tmp_path / alpha, extra=["TRAINER.TaskRes.RESIDUAL_SCALE", alpha]))
        t.use_train_features()
        t.train_loader_x.set_epoch(0)
        x, y = t.parse_batch_train(next(iter(t.train_loader_x)))
        torch.nn.functional.cross_entropy(t.model(x), y).backward()
        grads[alpha] = t._models["prompt_learner"].text_feature_residuals.grad.clone()
    torch.testing.assert_close(grads["1.0"], 2 * grads["0.5"])


@pytest.mark.slow
def test_eval_only_reproduces_saved_accuracy(data_root, tiny_clip, tmp_path):
    out = tmp_path / "run"
    res = train.main(_args(data_root, tiny_clip, out, epochs=10, extra=FAST))
    again = train.main(_args(data_root, tiny_clip, tmp_path / "eval", extra=["--eval-only", "--model-dir", str(out),
                                                                            "--load-epoch", "10"]))
    assert again["accuracy"] == pytest.approx(res["accuracy"])


def test_checkpoint_in_the_original_layout_loads_and_evaluates(data_root, tiny_clip, tmp_path):
    """The original code saves Dassl checkpoints: prompt_learner/model.pth.tar-N, fp16 base, pickled extras."""
    ref = make_trainer(_args(data_root, tiny_clip, tmp_path / "ref"))
    base = ref._models["prompt_learner"].base_text_features
    residual = torch.randn_like(base) * 0.1
    model_dir = tmp_path / "original"
    (model_dir / "prompt_learner").mkdir(parents=True)
    torch.save({"state_dict": {"base_text_features": base.half(), "text_feature_residuals": residual},
                "epoch": 200, "optimizer": {"state": {}, "param_groups": []},
                "scheduler": {"last_epoch": 200, "successor": PickledSchedulerObject()}, "val_result": None},
               model_dir / "prompt_learner" / "model.pth.tar-200")
    res = train.main(_args(data_root, tiny_clip, tmp_path / "eval", extra=["--eval-only", "--model-dir", str(model_dir),
                                                                          "--load-epoch", "200"]))
    ref._models["prompt_learner"].load_state_dict({"base_text_features": base.half().float(),
                                                   "text_feature_residuals": residual})
    logits, labels = all_logits(ref)
    expected = 100.0 * (logits.argmax(1) == labels).float().mean().item()
    assert res["accuracy"] == pytest.approx(expected)


@pytest.mark.slow
def test_checkpoint_for_other_classes_is_refused(data_root, tiny_clip, tmp_path):
    out = tmp_path / "run"
    train.main(_args(data_root, tiny_clip, out))
    with pytest.raises(SystemExit, match="classes"):
        train.main(_args(data_root, tiny_clip, tmp_path / "e", dataset="imagenet",
                         extra=["--eval-only", "--model-dir", str(out), "--load-epoch", "2"]))


@pytest.mark.slow
def test_enhanced_base_is_trained_written_and_loaded(data_root, tiny_clip, tmp_path):
    base_dir = tmp_path / "base"
    train.main(_args(data_root, tiny_clip, base_dir, trainer="TaskResEnhancedBase", epochs=5,
                     extra=["OPTIM.LR", "0.01", "TRAINER.TaskResEnhancedBase.PREC", "fp32"]))
    path = base_dir / "enhanced_base.pth.tar"
    state = torch.load(path, weights_only=True)
    assert set(state["state_dict"]) == {"weight"}
    regular = make_trainer(_args(data_root, tiny_clip, tmp_path / "r"))
    assert state["state_dict"]["weight"].shape == regular.clip.model.text_projection.t().shape
    enhanced = make_trainer(_args(data_root, tiny_clip, tmp_path / "e", extra=["--enhanced-base", str(path)]))
    b_reg = regular._models["prompt_learner"].base_text_features
    b_enh = enhanced._models["prompt_learner"].base_text_features
    assert not torch.allclose(b_reg, b_enh)
    # The authors' released format: {"state_dict": {"weight": W}} with nothing else.
    authors = tmp_path / "model.pth.tar"
    torch.save({"state_dict": {"weight": state["state_dict"]["weight"].half()}}, authors)
    t2 = make_trainer(_args(data_root, tiny_clip, tmp_path / "e2", extra=["--enhanced-base", str(authors)]))
    torch.testing.assert_close(t2._models["prompt_learner"].base_text_features, b_enh, atol=1e-2, rtol=1e-2)


def test_enhanced_base_with_the_identity_projection_equals_the_regular_base(data_root, tiny_clip, tmp_path):
    regular = make_trainer(_args(data_root, tiny_clip, tmp_path / "r"))
    path = tmp_path / "same.pth.tar"
    torch.save({"state_dict": {"weight": regular.clip.model.text_projection.detach().t().clone()}}, path)
    same = make_trainer(_args(data_root, tiny_clip, tmp_path / "s", extra=["--enhanced-base", str(path)]))
    torch.testing.assert_close(same._models["prompt_learner"].base_text_features,
                               regular._models["prompt_learner"].base_text_features, atol=1e-5, rtol=1e-5)


def test_enhanced_base_for_another_backbone_is_refused(data_root, tiny_clip, tmp_path):
    path = tmp_path / "wrong.pth.tar"
    torch.save({"state_dict": {"weight": torch.zeros(7, 64)}}, path)
    with pytest.raises(SystemExit, match="another backbone"):
        train.main(_args(data_root, tiny_clip, tmp_path / "w", extra=["--enhanced-base", str(path)]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16/amp need CUDA")
@pytest.mark.parametrize("prec", ["fp16", "amp"])
def test_enhanced_base_loads_in_half_precisions_on_cuda(data_root, tiny_clip, tmp_path, prec):
    regular = make_trainer(_args(data_root, tiny_clip, tmp_path / "r"))
    path = tmp_path / "p.pth.tar"
    torch.save({"state_dict": {"weight": regular.clip.model.text_projection.detach().float().t() * 1.5}}, path)
    t = make_trainer(_args(data_root, tiny_clip, tmp_path / prec,
                           extra=["--enhanced-base", str(path), "TRAINER.TaskRes.PREC", prec]))
    assert t.precision == prec
    res = t.test()
    assert 0 <= res <= 100
