"""train.py end to end: zero-shot trainers, loss falls, resume, eval-only, the image path, bad input."""
import json
import os

import pytest
import torch

import train
from tests.conftest import make_trainer, train_args

FAST = ["OPTIM.LR", "0.05", "TRAINER.TaskRes.PREC", "fp32"]


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["ZeroshotCLIP", "ZeroshotCLIP2"])
def test_zero_shot_trainers_run_end_to_end(data_root, tiny_clip, tmp_path, trainer):
    res = train.main(train_args(data_root, tiny_clip, str(tmp_path), trainer=trainer))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == trainer and metrics["dataset"] == "Caltech101" and metrics["shots"] == 4
    assert metrics["accuracy"] == pytest.approx(res["accuracy"])
    assert "macro_f1" in metrics and metrics["timings"]["wall_s"] > 0
    assert (tmp_path / "config.yaml").is_file()
    assert "* accuracy:" in (tmp_path / "log.txt").read_text()
    assert not (tmp_path / "head").exists()  # nothing trained, nothing saved


@pytest.mark.slow
def test_training_loss_falls(data_root, tiny_clip, tmp_path):
    t = make_trainer(train_args(data_root, tiny_clip, str(tmp_path), epochs=20, extra=FAST, shots=8))
    losses = []
    original = t.forward_backward

    def record(batch):
        out = original(batch)
        losses.append(out["loss"])
        return out

    t.forward_backward = record
    t.train()
    per_epoch = len(losses) // 20
    first, last = sum(losses[:per_epoch]) / per_epoch, sum(losses[-per_epoch:]) / per_epoch
    assert last < 0.7 * first


@pytest.mark.slow
def test_image_path_without_cache_trains_and_matches_cached_evaluation(data_root, tiny_clip, tmp_path):
    """--no-cache runs the encoder on every batch like the original; evaluation agrees with the cached path."""
    cached = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "c")))
    uncached = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "u"), extra=["--no-cache"]))
    assert isinstance(next(iter(uncached.train_loader_x))["img"], torch.Tensor)
    assert next(iter(uncached.train_loader_x))["img"].dim() == 4  # images
    acc_c, acc_u = cached.test(), uncached.test()
    assert acc_c == pytest.approx(acc_u)
    res = train.main(train_args(data_root, tiny_clip, str(tmp_path / "u2"), extra=["--no-cache"]))
    assert json.loads((tmp_path / "u2" / "metrics.json").read_text())["feature_cache"] is False
    assert res["accuracy"] >= 0


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(data_root, tiny_clip, tmp_path):
    out = str(tmp_path / "run")
    args = train_args(data_root, tiny_clip, out, epochs=6, extra=FAST + ["TRAIN.CHECKPOINT_FREQ", "2"])
    full = train.main(train_args(data_root, tiny_clip, str(tmp_path / "full"), epochs=6,
                                 extra=FAST + ["TRAIN.CHECKPOINT_FREQ", "2"]))
    # An interrupted run: it stopped after epoch 4 (checkpoints 2 and 4 exist).
    t = make_trainer(args)
    t.max_epoch = 4
    t.train()
    assert os.path.isfile(os.path.join(out, "prompt_learner", "model.pth.tar-4"))
    resumed = make_trainer(args)
    seen = []
    original = resumed.run_epoch
    resumed.run_epoch = lambda: (seen.append(resumed.epoch), original())[1]
    resumed.train()
    assert seen == [4, 5]
    assert resumed.last_results["accuracy"] == pytest.approx(full["accuracy"])


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_from_another_config(data_root, tiny_clip, tmp_path):
    out = str(tmp_path / "run")
    train.main(train_args(data_root, tiny_clip, out, epochs=2, extra=FAST))
    with pytest.raises(SystemExit, match="different config"):
        train.main(train_args(data_root, tiny_clip, out, epochs=3, extra=["OPTIM.LR", "0.1"]))


@pytest.mark.parametrize("argv_change, message", [
    (("--trainer", "NoSuchMethod"), "Unknown trainer 'NoSuchMethod'. Valid:"),
    (("--backbone", "RN49"), "Unknown backbone 'RN49'"),
    (("--backbone", "/no/such/clip.pt"), "no such file"),
    (("--root", "/no/such/root"), "/no/such/root"),
    (("--config-file", "/no/such/config.yaml"), "does not exist"),
    (("--dataset-config-file", "configs/datasets/nope.yaml"), "does not exist"),
])
def test_bad_input_ends_in_one_clear_message(data_root, tiny_clip, tmp_path, argv_change, message, capsys):
    argv = train_args(data_root, tiny_clip, str(tmp_path))
    flag, value = argv_change
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv = [flag, value] + argv
    with pytest.raises(SystemExit) as exc:
        train.main(argv)
    assert message in str(exc.value)
    assert str(exc.value).startswith("error:")


def test_unreadable_config_and_bad_override(data_root, tiny_clip, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("OPTIM: [unclosed\n")
    argv = train_args(data_root, tiny_clip, str(tmp_path / "o"))
    argv[argv.index("--config-file") + 1] = str(bad)
    with pytest.raises(SystemExit, match="Cannot read the config file"):
        train.main(argv)
    with pytest.raises(SystemExit, match=r"^error: Unknown config key OPTIM.NO_SUCH_KEY$"):
        train.main(train_args(data_root, tiny_clip, str(tmp_path / "o2")) + ["OPTIM.NO_SUCH_KEY", "1"])
    # A misspelt key: one line with the nearest key, not the recipe's whole override list.
    with pytest.raises(SystemExit, match=r"^error: Unknown config key OPTIM.MAX_EPOCHS \(did you mean OPTIM.MAX_EPOCH\?\)$"):
        train.main(train_args(data_root, tiny_clip, str(tmp_path / "o2")) + ["OPTIM.MAX_EPOCHS", "3"])
    with pytest.raises(SystemExit, match=r"^error: Bad value for OPTIM.MAX_EPOCH: 'many'"):
        train.main(train_args(data_root, tiny_clip, str(tmp_path / "o2")) + ["OPTIM.MAX_EPOCH", "many"])


def test_missing_dataset_folder_names_the_path(tiny_clip, tmp_path):
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    with pytest.raises(SystemExit) as exc:
        train.main(train_args(str(empty_root), tiny_clip, str(tmp_path / "o")))
    assert "caltech-101" in str(exc.value) and "DATASETS.md" in str(exc.value)


def test_resnet_backbone_and_input_size_are_honoured(data_root, tiny_clip_rn, tmp_path):
    """A ResNet CLIP trained at 64 px runs at INPUT.SIZE 96 (its attention-pool grid is resampled)."""
    argv = train_args(data_root, tiny_clip_rn, str(tmp_path)) + ["INPUT.SIZE", "(96, 96)"]
    t = make_trainer(argv)
    assert t.clip.image_size == 96
    assert t.test() >= 0


def _registered_trainers():
    import trainers  # noqa: F401
    from engine import TRAINER_REGISTRY

    return sorted(TRAINER_REGISTRY.registered_names())


@pytest.mark.slow
@pytest.mark.parametrize("trainer", _registered_trainers())
def test_every_trainer_runs_two_epochs_from_the_same_command_line(data_root, tiny_clip, tmp_path, trainer):
    """Swapping --trainer is all it takes: same data, seed, shots, protocol and output files."""
    res = train.main(train_args(data_root, tiny_clip, str(tmp_path), trainer=trainer, epochs=2,
                                extra=["--cache-dir", str(tmp_path.parent / "shared_cache")]))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == trainer and metrics["seed"] == 1 and metrics["shots"] == 4
    assert metrics["dataset"] == "Caltech101" and metrics["split"] == "test"
    assert 0.0 <= res["accuracy"] <= 100.0


def test_all_methods_are_registered():
    assert set(_registered_trainers()) >= {"ZeroshotCLIP", "ZeroshotCLIP2", "TaskRes", "TaskResEnhancedBase",
                                           "LinearProbeCLIP", "CoOp", "CLIP_Adapter", "TipAdapter", "TipAdapterF"}
