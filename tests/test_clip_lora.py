"""CLIP-LoRA and the seam for methods that train through the encoders: only the LoRA matrices train, the frozen
weights stay untouched, checkpoints hold the LoRA matrices and restore the adapted encoders, an adapted image
encoder is never read from the feature cache (a text-only one is), and the launcher and the grid run it."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

import train
from tests.conftest import make_trainer, train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = ["--config-file", "configs/trainers/CLIP_LoRA/vit_b16.yaml"]
PATTERN = r"(image|text)\.\d+\.[qkvo]\.lora_[AB]"
# Test-sized: 4 classes x 4 shots, batch 8 -> 2 batches per epoch; 5 x 4 = 20 steps = 10 epochs. A high lr moves
# the rank-2 matrices visibly in so few steps.
SMALL = ["TRAINER.CLIP_LORA.ITERS_PER_SHOT", "5", "OPTIM.LR", "0.01"]


def _argv(data_root, clip, out, extra=(), opts=()):
    return train_args(data_root, clip, str(out), trainer="CLIP_LoRA", extra=[*CONFIG, *extra]) + SMALL + list(opts)


def _files_under(folder):
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files] if os.path.isdir(folder) else []


@pytest.mark.slow
def test_only_the_lora_matrices_train_and_the_frozen_weights_are_untouched(data_root, tiny_clip, tmp_path):
    trainer = make_trainer(_argv(data_root, tiny_clip, tmp_path))
    head = trainer.model.head
    frozen = {k: v.clone() for k, v in trainer.clip.model.state_dict().items()}
    before = {k: v.detach().clone() for k, v in head.named_parameters()}
    assert before and all(re.fullmatch(PATTERN, k) for k in before)
    assert {k.split(".")[0] for k in before} == {"image", "text"}
    assert not any(p.requires_grad for p in trainer.clip.model.parameters())
    trainer.train()
    assert trainer.timings["epochs_run"] == 10 and trainer._scheds["lora"].last_epoch == 20  # one LR step per batch
    for key, value in trainer.clip.model.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    after = dict(head.named_parameters())
    assert all(not torch.equal(after[k], before[k]) for k in before if k.endswith("lora_B"))  # B left zero
    assert all(torch.all(before[k] == 0) for k in before if k.endswith("lora_B"))


@pytest.mark.slow
def test_train_then_eval_only_restores_the_adapted_encoders(data_root, tiny_clip, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    res = train.main(_argv(data_root, tiny_clip, run, extra=["--cache-dir", str(cache)]))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "CLIP_LoRA" and metrics["epochs"] == 10
    extra = metrics["extra"]
    assert (extra["iterations"], extra["iterations_per_epoch"], extra["epochs"]) == (20, 2, 10)
    assert extra["adapted_encoders"] == ["image", "text"] and extra["trainable_parameters"] == 2304
    assert extra["precision"].startswith("fp32 ")  # PREC amp is fp32 on a CPU (no autocast); recorded with the deviation
    # The checkpoint holds the LoRA matrices and nothing of the backbone.
    state = torch.load(run / "lora" / "model.pth.tar-10", weights_only=True)["state_dict"]
    assert state and all(re.fullmatch(PATTERN, k) for k in state)
    assert sum(v.numel() for v in state.values()) == 2304
    # The adapted image encoder is never read from (nor written to) the feature cache.
    info = metrics["feature_cache_info"]
    assert info["images_from_cache"] is False and info["splits"] == {} and info["encoded_views"] == 0
    assert not _files_under(str(cache))
    # --eval-only --model-dir: a fresh model whose encoders are adapted by the checkpoint gives the same accuracy.
    again = train.main(_argv(data_root, tiny_clip, tmp_path / "eval",
                             extra=["--eval-only", "--model-dir", str(run), "--load-epoch", "10"]))
    assert again["accuracy"] == res["accuracy"]
    fresh = make_trainer(_argv(data_root, tiny_clip, tmp_path / "fresh"))
    fresh.load_model(str(run), epoch=10)
    for key, value in state.items():
        torch.testing.assert_close(dict(fresh.model.head.named_parameters())[key].detach(), value, rtol=0, atol=0)


def test_evaluation_text_features_follow_a_loaded_state(data_root, tiny_clip, tmp_path):
    # Evaluation encodes the adapted text tower once; loading another state (no mode switch) must not serve the
    # features of the previous one (trainers.heads.EvalTextCache).
    head = make_trainer(_argv(data_root, tiny_clip, tmp_path)).model.head.eval()
    with torch.no_grad():
        before = head.text_features().clone()
        state = {k: (torch.full_like(v, 0.5) if k.endswith("lora_B") else v) for k, v in head.state_dict().items()}
        head.load_state_dict(state)
        after = head.text_features()
        assert not torch.allclose(before, after)
        assert after is head.text_features()  # then kept for the rest of the evaluation


@pytest.mark.slow
def test_a_checkpoint_of_another_shape_is_one_clear_error(data_root, tiny_clip, tmp_path):
    run = tmp_path / "run"
    train.main(_argv(data_root, tiny_clip, run, opts=["TRAINER.CLIP_LORA.ITERS_PER_SHOT", "1"]))
    with pytest.raises(SystemExit) as err:
        train.main(_argv(data_root, tiny_clip, tmp_path / "eval", extra=["--eval-only", "--model-dir", str(run),
                                                                          "--load-epoch", "2"],
                         opts=["TRAINER.CLIP_LORA.RANK", "4"]))
    message = str(err.value)
    assert message.startswith("error:") and "shape" in message and "\n" not in message


def test_the_adapted_image_encoder_refuses_cached_features(data_root, tiny_clip, tmp_path):
    trainer = make_trainer(_argv(data_root, tiny_clip, tmp_path))
    assert not hasattr(trainer.test_loader, "features")  # the images' own loader, not a cached-feature one
    with pytest.raises(RuntimeError, match="precomputed image features"):
        trainer.model(torch.zeros(2, trainer.clip.embed_dim))


def test_a_wrong_declaration_of_adapted_encoders_fails_loudly(data_root, tiny_clip, tmp_path):
    trainer = make_trainer(_argv(data_root, tiny_clip, tmp_path))
    trainer.adapted_encoders = lambda: ("text",)  # claims the image encoder is frozen while LoRA adapts it
    with pytest.raises(RuntimeError, match=r"declares the adapted encoders \['text'\].*\['image', 'text'\]"):
        trainer.check_adapted_encoders()


@pytest.mark.slow
def test_text_only_lora_on_a_resnet_reads_image_features_from_the_shared_cache(data_root, tiny_clip_rn, tmp_path):
    cache = str(tmp_path / "cache")
    rn = ["INPUT.SIZE", "(64, 64)"]
    zs = train.main(train_args(data_root, tiny_clip_rn, str(tmp_path / "zs"), trainer="ZeroshotCLIP",
                               extra=["--cache-dir", cache]) + rn)
    assert zs["accuracy"] >= 0
    run = tmp_path / "lora"
    train.main(_argv(data_root, tiny_clip_rn, run, extra=["--cache-dir", cache],
                     opts=["TRAINER.CLIP_LORA.ENCODER", "text", "TRAINER.CLIP_LORA.PREC", "fp32",  # zero-shot's precision
                           "FEATURE_CACHE.NUM_VIEWS", "0", *rn]))
    metrics = json.loads((run / "metrics.json").read_text())
    info = metrics["feature_cache_info"]
    assert metrics["extra"]["adapted_encoders"] == ["text"] and info["adapted_encoders"] == ["text"]
    # The LoRA on the text side leaves the image weights' fingerprint alone: zero-shot's test features are reused.
    assert info["splits"]["test"]["encoded_views"] == 0 and info["splits"]["test"]["reused_views"] == 1
    assert info["splits"]["train"]["views"] == metrics["epochs"] == 10  # one view per epoch (paper protocol)


def test_image_lora_on_a_resnet_is_one_clear_error(data_root, tiny_clip_rn, tmp_path):
    with pytest.raises(SystemExit) as err:
        train.main(_argv(data_root, tiny_clip_rn, tmp_path, opts=["INPUT.SIZE", "(64, 64)"]))
    message = str(err.value)
    assert "ViT image encoders" in message and "TRAINER.CLIP_LORA.ENCODER text" in message and "\n" not in message


@pytest.mark.slow
def test_launcher_runs_clip_lora(data_root, tiny_clip, tmp_path):
    out = tmp_path / "output"
    env = dict(os.environ, DATA=data_root, BACKBONE=tiny_clip, OUTPUT=str(out), PYTHON=sys.executable, SEEDS="1",
               TASKRES_ENGINE="builtin", INPUT_SIZE="32",
               EXTRA_OPTS="DATALOADER.NUM_WORKERS 0 DATALOADER.TEST.BATCH_SIZE 16 TRAINER.CLIP_LORA.ITERS_PER_SHOT 2")
    run = subprocess.run(["bash", "scripts/method/main.sh", "CLIP_LoRA", "caltech101", "4"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    [path] = [f for f in _files_under(str(out / "caltech101" / "CLIP_LoRA")) if f.endswith("metrics.json")]
    with open(path) as f:
        metrics = json.load(f)
    # 4 classes x 4 shots = 16 images = 1 batch of 32 per epoch; 2 x 4 = 8 iterations = 8 epochs.
    assert metrics["method"] == "CLIP_LoRA" and metrics["extra"]["iterations"] == 8 and metrics["epochs"] == 8
    assert metrics["modified"]["TRAINER.CLIP_LORA.ITERS_PER_SHOT"] == ["500", "2"]


def test_grid_plans_clip_lora(tmp_path, capsys):
    from scripts.reproduce import grid

    report = grid.main(["--methods", "CLIP_LoRA", "--datasets", "caltech101", "dtd", "--shots", "1", "16",
                        "--seeds", "1", "--backbone", "ViT-B/16", "--output", str(tmp_path / "out"), "--dry-run"])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[run]")]
    assert len(report.planned) == len(printed) == 4
    assert all("--trainer CLIP_LoRA" in line and "configs/trainers/CLIP_LoRA/vit_b16.yaml" in line for line in printed)
    assert any("caltech101/CLIP_LoRA/vit_b16_16shots/seed1" in line for line in printed)
