"""LP++ through the project's doors: train.py, --eval-only, the generic launcher, the grid, resume, bad input."""
import json
import os
import signal

import pytest
import torch

import train
from tests.conftest import make_trainer, run_launcher, train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/trainers/LPP/rn50.yaml"
CHANCE = 25.0  # data_root's Caltech101: 4 classes


def _args(root, clip, out, cache, epochs=30, extra=()):
    # The recipe's protocol (one augmented view per image), fewer iterations.
    return train_args(root, clip, str(out), trainer="LPP", epochs=epochs,
                      extra=("--config-file", CONFIG, "--cache-dir", str(cache), *extra)) + ["FEATURE_CACHE.NUM_VIEWS", "0"]


def _ckpt(out, name):
    return torch.load(os.path.join(out, "lpp", name), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def run(data_root, tiny_clip, tmp_path_factory):
    base = tmp_path_factory.mktemp("lpp")
    out = base / "run"
    result = train.main(_args(data_root, tiny_clip, out, base / "cache"))
    return {"out": str(out), "cache": base / "cache", "result": result,
            "metrics": json.loads((out / "metrics.json").read_text())}


@pytest.mark.slow
def test_trains_end_to_end_and_records_its_choices(run):
    m, extra = run["metrics"], run["metrics"]["extra"]
    assert m["method"] == "LPP" and m["epochs"] == 30 and m["accuracy"] > CHANCE + 20, m
    assert extra["lr_w"] > 0 and extra["lr_alpha"] > 0 and extra["accumulate_alpha_grad"] is True
    assert 1 <= extra["best_iteration"] <= 30 and extra["select_on_val"] is True
    assert m["feature_cache_info"]["train_views"] == 1  # one augmented view per support image, as the public code
    # The deployed (best-val) state is the last epoch's checkpoint and model-best; step sizes saved with it.
    last, best = _ckpt(run["out"], "model.pth.tar-30"), _ckpt(run["out"], "model-best.pth.tar")
    assert all(torch.equal(last["state_dict"][k], best["state_dict"][k]) for k in last["state_dict"])
    assert float(last["state_dict"]["lr_w"]) == pytest.approx(extra["lr_w"])
    # Alpha moved from its single initial value (a step every 10 iterations).
    assert last["state_dict"]["alpha"].unique().numel() > 1


@pytest.mark.slow
@pytest.mark.parametrize("epoch", [30, None], ids=["load-epoch", "model-best"])
def test_eval_only_reproduces_the_accuracy(run, data_root, tiny_clip, tmp_path, epoch):
    flags = ["--eval-only", "--model-dir", run["out"]] + (["--load-epoch", str(epoch)] if epoch else [])
    again = train.main(_args(data_root, tiny_clip, tmp_path / "eval", run["cache"], extra=flags))
    assert again["accuracy"] == pytest.approx(run["result"]["accuracy"])


def test_head_starts_from_class_sums_and_one_alpha(data_root, tiny_clip, tmp_path):
    import torch.nn.functional as F

    from trainers.lpp import initial_alpha

    trainer = make_trainer(_args(data_root, tiny_clip, tmp_path / "t", tmp_path / "cache"))
    trainer.use_train_features()
    head, loader = trainer.model.head, trainer.train_loader_x
    assert len(loader) == 1 and loader.batch_size == len(trainer.dm.dataset.train_x)  # full batch
    f, y = F.normalize(loader.view(0), dim=-1), loader.labels
    for c in range(head.weight.shape[0]):
        torch.testing.assert_close(head.weight[c], f[y == c].sum(0))
    assert torch.all(head.alpha == initial_alpha(f, y, head.text))
    assert trainer.get_current_lr() == pytest.approx(float(head.lr_w))


@pytest.mark.slow
def test_interrupted_run_resumes_exactly(data_root, tiny_clip, tmp_path, monkeypatch, run):
    """SIGINT after iteration 15 (between two alpha steps), then the same command: the uninterrupted run's result."""
    from trainers.lpp import LPPHead

    out, keep = str(tmp_path / "interrupted"), LPPHead.keep_if_best

    def keep_then_stop(head, accuracy, iteration):
        keep(head, accuracy, iteration)
        if iteration == 14:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(LPPHead, "keep_if_best", keep_then_stop)
    pytest.raises(SystemExit, train.main, _args(data_root, tiny_clip, out, run["cache"]))
    monkeypatch.undo()
    assert os.path.isfile(os.path.join(out, "resume.pth.tar"))
    train.main(_args(data_root, tiny_clip, out, run["cache"]))
    a, b = _ckpt(run["out"], "model-best.pth.tar")["state_dict"], _ckpt(out, "model-best.pth.tar")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    got = json.loads(open(os.path.join(out, "metrics.json")).read())
    assert got["extra"]["best_iteration"] == run["metrics"]["extra"]["best_iteration"]
    assert got["accuracy"] == run["metrics"]["accuracy"]


@pytest.mark.slow
def test_training_without_the_cache_is_one_clear_error(data_root, tiny_clip, tmp_path):
    with pytest.raises(SystemExit) as exc:
        train.main(_args(data_root, tiny_clip, tmp_path / "bad", tmp_path / "cache", epochs=2, extra=["--no-cache"]))
    assert str(exc.value.code).startswith("error: LPP fits on cached support features (full batch)")


@pytest.mark.slow
def test_last_iteration_option_reads_no_val(data_root, tiny_clip, tmp_path, run):
    out = tmp_path / "last"
    train.main(_args(data_root, tiny_clip, out, run["cache"]) + ["TRAINER.LPP.SELECT_ON_VAL", "False"])
    extra = json.loads((out / "metrics.json").read_text())["extra"]
    assert extra["select_on_val"] is False and "best_iteration" not in extra
    assert "val" not in json.loads((out / "metrics.json").read_text())["feature_cache_info"]["splits"]


def test_label_recipe_and_grid_dry_run(tmp_path, tiny_clip, capsys):
    import trainers
    from bookkeeping.recipes import recipe_argv
    from scripts.reproduce import grid

    assert trainers.method_spec("LPP").label == "LP++"
    argv = recipe_argv("LPP", "imagenet", 16, "ViT-B/16")
    assert argv[argv.index("--config-file") + 1] == CONFIG and argv[argv.index("OPTIM.MAX_EPOCH") + 1] == "300"
    report = grid.main(["--methods", "LPP", "--datasets", "caltech101", "dtd", "--shots", "1", "16", "--seeds", "1",
                        "--backbone", "ViT-B/16", "--data", str(tmp_path), "--output", str(tmp_path / "out"),
                        "--dry-run"])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[run]")]
    assert len(report.planned) == len(printed) == 4 and not (tmp_path / "out").exists()
    assert all("--trainer LPP" in line and CONFIG in line and "OPTIM.MAX_EPOCH 300" in line for line in printed)
    assert any("caltech101/LPP/vit_b16_16shots/seed1" in line for line in printed), printed


@pytest.mark.slow
def test_launcher_runs_the_recipe(data_root, tiny_clip, tmp_path):
    metrics = run_launcher("LPP", "caltech101", 2, data_root, tiny_clip, tmp_path / "output", "TRAIN.PRINT_FREQ 1000")
    path = metrics["path"]
    assert metrics["method"] == "LPP" and metrics["epochs"] == 300 and metrics["shots"] == 2
    assert metrics["extra"]["best_iteration"] >= 1 and os.path.basename(os.path.dirname(os.path.dirname(path))).endswith("_2shots")
