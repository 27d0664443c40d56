"""The run identity (engine/identity.py, scripts/reproduce/runs.py) on configs built by train.py, and the run lock."""
import os
import subprocess
import sys

import pytest

import train
from engine.identity import RunLocked, run_lock
from scripts.reproduce.runs import identify, recipe_argv, variant_dir


def _cfg(*pairs, method="TaskRes", dataset="caltech101", shots=16, backbone="RN50", seed=1, out="/o/run/seed1"):
    argv = ["--seed", str(seed), "--output-dir", out] + recipe_argv(method, dataset, shots, backbone) + list(pairs)
    return train.setup_cfg(train.build_parser().parse_args(argv))


def test_the_recipe_run_is_recipe_and_launch_only_keys_do_not_count():
    base = identify(_cfg())
    assert base.recipe and base.variant == "" and base.deviation == {}
    same = identify(_cfg("DATALOADER.NUM_WORKERS", "1", "TRAIN.PRINT_FREQ", "7", "DATALOADER.TEST.BATCH_SIZE", "3",
                         out="/elsewhere/seed1"))
    assert same.fingerprint == base.fingerprint and same.recipe
    # Another backbone is another identity; outside the paper's list it is never "recipe", though unmodified.
    other = identify(_cfg(backbone="RN101"))
    assert other.recipe and other.fingerprint != base.fingerprint
    tiny = identify(_cfg(backbone="/x/tiny.pt"))
    assert tiny.variant == "" and not tiny.recipe


def test_a_change_names_a_variant_shared_by_every_seed():
    a1 = identify(_cfg("OPTIM.MAX_EPOCH", "10", seed=1))
    a2 = identify(_cfg("OPTIM.MAX_EPOCH", "10", seed=2))
    b1 = identify(_cfg("OPTIM.MAX_EPOCH", "20", seed=1))
    assert a1.deviation == {"OPTIM.MAX_EPOCH": ("200", "10")} and not a1.recipe
    assert a1.variant == a2.variant != b1.variant and len(a1.variant) == 8
    assert a1.fingerprint != a2.fingerprint  # the seed is part of a run's identity, not of its variant
    # Setting a recipe value explicitly is no change.
    assert identify(_cfg("OPTIM.MAX_EPOCH", "200")).fingerprint == identify(_cfg()).fingerprint
    assert variant_dir("/o/t/rn50_16shots/seed1", a1.variant) == f"/o/t/rn50_16shots_{a1.variant}/seed1"
    assert variant_dir(variant_dir("/o/t/x/seed1", "ab"), "ab") == "/o/t/x_ab/seed1"


def test_zero_shot_identity_ignores_shots():
    one = identify(_cfg(method="ZeroshotCLIP", shots=1))
    sixteen = identify(_cfg(method="ZeroshotCLIP", shots=16))
    assert one.fingerprint == sixteen.fingerprint and one.recipe


def test_run_lock_excludes_a_second_holder_and_breaks_a_dead_ones(tmp_path):
    folder = str(tmp_path / "run")
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from engine.identity import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, folder, os.getcwd()], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match="is being run by process"):
            with run_lock(folder, wait=False):
                pass
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing: its lock is stale and broken at once.
    with run_lock(folder, wait=False) as waited:
        assert waited is False
    assert not os.path.exists(os.path.join(folder, ".lock"))
