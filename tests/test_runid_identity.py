"""The run identity (bookkeeping/identity.py, bookkeeping/folders.py) on configs built like train.py's, and the lock."""
import os
import subprocess
import sys

import pytest

from bookkeeping.config import parse
from bookkeeping.folders import RunLocked, run_folder, run_lock
from bookkeeping.identity import identify
from bookkeeping.recipes import recipe_argv


def _cfg(*pairs, method="TaskRes", dataset="caltech101", shots=16, backbone="RN50", seed=1, out="/o/run/seed1"):
    argv = ["--seed", str(seed), "--output-dir", out] + recipe_argv(method, dataset, shots, backbone) + list(pairs)
    return parse(argv)[1]


def _id(*pairs, engine="builtin", **kw):
    return identify(_cfg(*pairs, **kw), engine)


def test_the_recipe_run_is_recipe_and_launch_only_keys_do_not_count():
    base = _id()
    assert base.recipe and base.variant == "" and base.deviation == {}
    same = _id("DATALOADER.NUM_WORKERS", "1", "TRAIN.PRINT_FREQ", "7", "DATALOADER.TEST.BATCH_SIZE", "3",
               out="/elsewhere/seed1")
    assert same.fingerprint == base.fingerprint and same.recipe
    # Another backbone is another identity; outside the paper's list it is never "recipe", though unmodified.
    other = _id(backbone="RN101")
    assert other.recipe and other.fingerprint != base.fingerprint
    tiny = _id(backbone="/x/tiny.pt")
    assert tiny.variant == "" and not tiny.recipe


def test_a_change_names_a_variant_shared_by_every_seed():
    a1, a2, b1 = _id("OPTIM.MAX_EPOCH", "10", seed=1), _id("OPTIM.MAX_EPOCH", "10", seed=2), _id("OPTIM.MAX_EPOCH", "20")
    assert a1.deviation == {"OPTIM.MAX_EPOCH": ("200", "10")} and not a1.recipe
    assert a1.variant == a2.variant != b1.variant and len(a1.variant) == 8
    assert a1.fingerprint != a2.fingerprint  # the seed is part of a run's identity, not of its variant
    assert _id("OPTIM.MAX_EPOCH", "200").fingerprint == _id().fingerprint  # a recipe value set explicitly: no change
    cfg = _cfg("OPTIM.MAX_EPOCH", "10", out="/o/t/rn50_16shots/seed1")
    assert run_folder(cfg, identify(cfg, "builtin")) == f"/o/t/rn50_16shots_{a1.variant}/seed1"


def test_zero_shot_identity_ignores_shots():
    one, sixteen = _id(method="ZeroshotCLIP", shots=1), _id(method="ZeroshotCLIP", shots=16)
    assert one.fingerprint == sixteen.fingerprint and one.recipe


def test_identity_is_the_methods_own_node_and_the_engine():
    base = _id()
    assert not [k for k in base.flat if k.startswith("TRAINER.") and not k.startswith(("TRAINER.TaskRes.",
                                                                                        "TRAINER.NAME"))]
    # Another method's keys cannot change a TaskRes result: no part of its identity, no deviation.
    assert _id("TRAINER.COOP.N_CTX", "4", "TRAINER.CLIP_ADAPTER.RATIO", "0.5").fingerprint == base.fingerprint
    # CoOp's launch-only key (an exact speed-up) is no part of CoOp's identity; its own N_CTX is.
    coop = _id(method="CoOp")
    assert _id("TRAINER.COOP.TRUNCATE_CONTEXT", "False", method="CoOp").fingerprint == coop.fingerprint
    assert _id("TRAINER.COOP.N_CTX", "4", method="CoOp").fingerprint != coop.fingerprint
    # The engine is: a built-in run is not a Dassl run (and neither is "modified").
    dassl = _id(engine="dassl")
    assert dassl.fingerprint != base.fingerprint and dassl.recipe and dassl.deviation == {}


def test_the_enhanced_base_names_its_folder_and_result(tmp_path):
    base = tmp_path / "base.pth.tar"
    base.write_bytes(b"")
    cfg = _cfg(out="/o/TaskRes/rn50_16shots/seed1")
    star = parse(["--enhanced-base", str(base), "--seed", "1", "--output-dir", "/o/TaskRes/rn50_16shots/seed1"]
                 + recipe_argv("TaskRes", "caltech101", 16, "RN50"))[1]
    plain, enhanced = identify(cfg, "builtin"), identify(star, "builtin")
    assert enhanced.deviation == {} and enhanced.recipe and enhanced.fingerprint != plain.fingerprint
    assert run_folder(star, enhanced) == "/o/TaskRes/rn50_16shots_enhanced/seed1"
    m = enhanced.as_metrics()
    assert (m["schema"], m["result_name"], m["label"], m["table_order"]) == (2, "TaskRes*", "TaskRes*", 70)
    assert plain.as_metrics()["result_name"] == "TaskRes" and plain.as_metrics()["selects_on_val"] is False


def test_run_lock_excludes_a_second_holder_and_breaks_a_dead_ones(tmp_path):
    folder = str(tmp_path / "run")
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from bookkeeping.folders import run_lock\n"
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
    with run_lock(folder, wait=False) as waited:  # the holder died without releasing: broken at once
        assert waited is False
    assert not os.path.exists(os.path.join(folder, ".lock"))
