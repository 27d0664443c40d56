"""The launchers: scripts/taskres/main.sh, eval.sh, enhanced_base.sh and scripts/zeroshot/main.sh on synthetic trees."""
import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.synthetic_datasets import write_dataset
from tools import names

pytestmark = pytest.mark.slow  # every test here trains end to end

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(data, clip, out, **extra):
    env = dict(os.environ, DATA=str(data), BACKBONE=clip, OUTPUT=str(out), PYTHON=sys.executable, SEEDS="1 2",
               EPOCHS="2", INPUT_SIZE="32", TASKRES_ENGINE="builtin",
               EXTRA_OPTS="DATALOADER.NUM_WORKERS 0 DATALOADER.TRAIN_X.BATCH_SIZE 8 FEATURE_CACHE.NUM_VIEWS 2 "
                          "TRAINER.TaskRes.PREC fp32 TRAINER.TaskResEnhancedBase.PREC fp32")
    env.update(extra)
    return env


def _bash(script, args, env):
    return subprocess.run(["bash", script, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("dataset", ["caltech101", "imagenet"])
def test_taskres_main_runs_every_seed_then_skips_them(data_root, tiny_clip, tmp_path, dataset):
    env = _env(data_root, tiny_clip, tmp_path)
    first = _bash("scripts/taskres/main.sh", [dataset, "2"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    tag = f"{os.path.basename(tiny_clip)[:-3].replace('-', '_')}_2shots"
    # EPOCHS, INPUT_SIZE and EXTRA_OPTS modify the recipe: the runs share one <tag>_<8 hex> folder.
    [group] = list((tmp_path / dataset / "TaskRes").glob(f"{tag}_*"))
    for seed in (1, 2):
        metrics = json.loads((group / f"seed{seed}" / "metrics.json").read_text())
        assert metrics["seed"] == seed and metrics["shots"] == 2 and metrics["epochs"] == 2
        assert group.name == f"{tag}_{metrics['variant']}" and metrics["recipe"] is False
        lr = 2e-4 if dataset == "imagenet" else 2e-3
        cfg = (group / f"seed{seed}" / "config.yaml").read_text()
        assert f"LR: {lr}" in cfg and "RESIDUAL_SCALE: 0.5" in cfg
    assert "mean accuracy" in first.stdout
    # Both seeds share one feature cache: the test split is encoded once.
    from features import list_entries
    assert len([e for e in list_entries(str(tmp_path / "feature_cache")) if e["describe"]["split"] == "test"]) == 1
    second = _bash("scripts/taskres/main.sh", [dataset, "2"], env)
    assert second.returncode == 0
    assert second.stdout.count("[skip]") == 2 and "[run]" not in second.stdout


def test_taskres_main_recipe_alpha_for_flowers_and_clear_errors(tmp_path, tiny_clip):
    root = tmp_path / "data"
    write_dataset("OxfordFlowers", str(root), num_classes=3, per_class=10)
    env = _env(root, tiny_clip, tmp_path / "out", SEEDS="1")
    res = _bash("scripts/taskres/main.sh", ["oxford_flowers", "1"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = next((tmp_path / "out").rglob("config.yaml")).read_text()
    assert "RESIDUAL_SCALE: 1.0" in cfg and "MAX_EPOCH: 2" in cfg
    no_data = {k: v for k, v in env.items() if k != "DATA"}
    res = _bash("scripts/taskres/main.sh", ["oxford_flowers", "1"], no_data)
    assert res.returncode != 0 and "set DATA" in res.stderr
    res = _bash("scripts/taskres/main.sh", ["flowers", "1"], env)
    assert res.returncode != 0 and "unknown dataset 'flowers'" in res.stderr
    res = _bash("scripts/taskres/main.sh", ["oxford_flowers", "0"], env)
    assert res.returncode != 0 and "SHOTS must be a positive integer" in res.stderr


def test_enhanced_base_then_taskres_star_then_eval_on_imagenet_a(tmp_path, tiny_clip):
    root = tmp_path / "data"
    write_dataset("ImageNet", str(root), num_classes=4, per_class=6)
    write_dataset("ImageNetA", str(root), num_classes=4, per_class=3)
    out = tmp_path / "out"
    env = _env(root, tiny_clip, out, SEEDS="1")
    res = _bash("scripts/taskres/enhanced_base.sh", ["imagenet", "2"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    bases = [line.split(": ", 1)[1] for line in res.stdout.splitlines() if line.startswith("Enhanced bases: ")][0]
    assert os.path.isfile(bases.replace("{seed}", "1"))
    env_star = dict(env, ENHANCED_BASE=bases)
    res = _bash("scripts/taskres/main.sh", ["imagenet", "2"], env_star)
    assert res.returncode == 0, res.stderr[-3000:]
    run = next(out.glob("imagenet/TaskRes/*_2shots_enhanced_*/seed1"))
    assert "ENHANCED_BASE: " + bases.replace("{seed}", "1") in (run / "config.yaml").read_text()
    res = _bash("scripts/taskres/eval.sh", ["imagenet", "2", "imagenet_a"], env_star)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((run / "eval_imagenet_a" / "metrics.json").read_text())
    assert metrics["dataset"] == "ImageNetA" and metrics["eval_only"] is True
    assert "Evaluate on the *test* set" in (run / "eval_imagenet_a" / "log.txt").read_text()


def test_zeroshot_main_takes_shots_like_the_others(data_root, tiny_clip, tmp_path):
    env = _env(data_root, tiny_clip, tmp_path, SEEDS="1")
    res = _bash("scripts/zeroshot/main.sh", ["caltech101"], env)
    assert res.returncode != 0 and "usage:" in res.stderr
    res = _bash("scripts/zeroshot/main.sh", ["caltech101", "4"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    [path] = list(tmp_path.rglob("metrics.json"))
    metrics = json.loads(path.read_text())
    # Honest: the SHOTS asked for, and no epoch (nothing is trained, whatever the config says).
    assert (metrics["method"], metrics["shots"], metrics["epochs"]) == ("ZeroshotCLIP", 4, None)
    assert path.parent.parent.name.startswith(names.backbone_tag(tiny_clip) + "_zeroshot")
    # Zero-shot encodes only the test split.
    from features import list_entries
    assert [e["describe"]["split"] for e in list_entries(str(tmp_path / "feature_cache"))] == ["test"]
    # Another SHOTS is the same zero-shot run (no training image is read): reused, not rerun.
    res = _bash("scripts/zeroshot/main.sh", ["caltech101", "16"], env)
    assert res.returncode == 0 and "[skip]" in res.stdout and "[run]" not in res.stdout
