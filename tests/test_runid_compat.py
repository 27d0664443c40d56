"""Runs finished before identity schema 2 are still reused; adding a method changes no existing run's identity."""
import json
import os
import subprocess
import sys

import pytest

from bookkeeping.__main__ import plan
from bookkeeping.config import UserError, parse
from bookkeeping.folders import folder_state
from bookkeeping.identity import identify
from bookkeeping.recipes import recipe_argv
from datasets import DEFAULT_TRACK
from engine.checkpoint import fingerprint, flatten_config
from tests.test_method_plugin import EXAMPLE, plugin_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the code before schema 2 left out of a fingerprint (engine/identity.py's LAUNCH_ONLY_KEYS then).
OLD_LAUNCH_ONLY = ("OUTPUT_DIR", "RESUME", "VERBOSE", "USE_CUDA", "DATASET.ROOT", "FEATURE_CACHE.DIR",
                   "DATALOADER.NUM_WORKERS", "DATALOADER.TEST.BATCH_SIZE", "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ",
                   "TRAIN.RESUME_SAVE_S", "FEATURE_CACHE.BATCH_SIZE", "FEATURE_CACHE.NUM_WORKERS", "FEATURE_CACHE.MAX_GB",
                   "TRAINER.COOP.TRUNCATE_CONTEXT", "TRAINER.COCOOP.PROMPTS_PER_CALL")


def _argv(folder, method="TaskRes", *pairs):
    return (["--root", "/data", "--seed", "1", "--output-dir", str(folder), "--reuse"]
            + recipe_argv(method, "caltech101", 4, "RN50") + list(pairs))


def write_old_run(folder, argv, engine="builtin", drop_track=False):
    """A finished run as the code before schema 2 wrote it: the merged config.yaml, and a metrics.json without
    "schema" whose fingerprint covers the whole config (every method's node)."""
    cfg = parse(argv)[1]
    os.makedirs(folder, exist_ok=True)
    dump = cfg.dump()
    if drop_track:  # written before DATASET.TRACK existed
        dump = "".join(line for line in dump.splitlines(True) if not line.strip().startswith("TRACK:"))
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(dump)
    flat = flatten_config(cfg, OLD_LAUNCH_ONLY)
    flat.pop("DATASET.TRACK", None)
    metrics = {"method": cfg.TRAINER.NAME, "dataset": "Caltech101", "backbone": "RN50", "shots": 4, "seed": 1,
               "split": "test", "accuracy": 50.0, "macro_f1": 0.5, "eval_only": False, "epochs": 100,
               "feature_cache": True, "engine": engine, "official_split": True, "fingerprint": fingerprint(flat),
               "recipe": True, "variant": None, "modified": {}, "classes": "all", "track": "fewshot_val",
               "read_validation": False, "tracks": ["fewshot_val", "valfree"], "class_agnostic": False,
               "feature_cache_info": {}, "timings": {"wall_s": 1.0}, "extra": {}}
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump(metrics, f)


def test_an_old_run_is_reused_under_its_engine_only(tmp_path):
    folder = tmp_path / "caltech101/TaskRes/rn50_4shots/seed1"
    write_old_run(folder, _argv(folder))
    [p] = plan(_argv(folder), ["1"])
    assert (p.state, p.folder) == ("done", str(folder))
    write_old_run(folder, _argv(folder), engine="dassl")
    with pytest.raises(UserError, match="another config .*ENGINE"):
        plan(_argv(folder), ["1"])


def test_an_old_selecting_run_from_before_tracks_is_recognised(tmp_path):
    folder = tmp_path / "caltech101/TipAdapterF/rn50_4shots/seed1"
    write_old_run(folder, _argv(folder, "TipAdapterF"), drop_track=True)
    # It is a fewshot_val run: reused by a fewshot_val request for that folder ...
    ident = identify(parse(_argv(folder, "TipAdapterF", "DATASET.TRACK", "fewshot_val"))[1], "builtin")
    assert folder_state(str(folder), ident)[0] == "done"
    # ... and a request of another track (the default one, now that fewshot_val runs have their own folder)
    # that lands on it gets one line saying what the folder holds and where it goes.
    for pairs in ([], ["DATASET.TRACK", "valfree"]):
        if not pairs and DEFAULT_TRACK == "fewshot_val":
            continue
        ident = identify(parse(_argv(folder, "TipAdapterF", *pairs))[1], "builtin")
        state, why = folder_state(str(folder), ident)
        assert state == "conflict" and "fewshot_val-track run of TipAdapterF" in why
        assert str(folder).replace("rn50_4shots", "rn50_4shots_fewshot_val") in why
    # A launcher's fewshot_val request goes to the suffixed folder itself.
    [p] = plan(_argv(folder, "TipAdapterF", "DATASET.TRACK", "fewshot_val"), ["1"])
    assert p.folder == str(folder).replace("rn50_4shots", "rn50_4shots_fewshot_val") and p.state == "run"


def _plugin_env(tmp_path):
    """The documentation's example method (examples/my_probe.py) added as a plugin."""
    return plugin_env(os.path.dirname(EXAMPLE))


def test_adding_a_method_changes_no_identity(tmp_path):
    code = ("import sys; from bookkeeping.config import parse; from bookkeeping.identity import identify; "
            "print(identify(parse(sys.argv[1:])[1], 'builtin').fingerprint)")
    argv = _argv(tmp_path / "x/seed1")
    without = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True,
                             env=dict(os.environ, TASKRES_ENGINE="builtin"))
    with_plugin = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True,
                                 env=_plugin_env(tmp_path))
    assert without.returncode == with_plugin.returncode == 0, with_plugin.stderr[-2000:]
    assert without.stdout == with_plugin.stdout


@pytest.mark.slow
def test_a_finished_launcher_run_is_reused_after_a_method_is_added(data_root, tiny_clip, tmp_path):
    env = dict(os.environ, DATA=data_root, BACKBONE=tiny_clip, OUTPUT=str(tmp_path / "out"), PYTHON=sys.executable,
               SEEDS="1", EPOCHS="1", TASKRES_ENGINE="builtin",
               EXTRA_OPTS="DATALOADER.NUM_WORKERS 0 DATALOADER.TRAIN_X.BATCH_SIZE 8 FEATURE_CACHE.NUM_VIEWS 1")
    first = subprocess.run(["bash", "scripts/taskres/main.sh", "caltech101", "2"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run(["bash", "scripts/taskres/main.sh", "caltech101", "2"], cwd=REPO,
                           env=dict(_plugin_env(tmp_path), **{k: env[k] for k in env if k not in ("PYTHONPATH",)}),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[skip]" in again.stdout and "holds a finished run" not in again.stderr


def test_the_closing_line_splits_the_whole_wall_time_as_metrics_json_does(data_root, tiny_clip, tmp_path):
    import train
    from tests.conftest import train_args

    out = tmp_path / "run"
    train.main(train_args(data_root, tiny_clip, str(out), shots=1))
    metrics = json.loads((out / "metrics.json").read_text())
    phases, wall = metrics["timings"]["phases"], metrics["timings"]["wall_s"]
    assert set(phases) == {"backbone_s", "extraction_s", "training_s", "evaluation_s", "other_s"}
    assert phases["extraction_s"] > 0 and sum(phases.values()) == pytest.approx(wall, abs=0.01)
    last = (out / "log.txt").read_text().strip().splitlines()[-1]
    assert f"({wall:.1f}s)" in last and f"extraction {phases['extraction_s']:.1f}s" in last
    assert (metrics["schema"], metrics["result_name"], metrics["label"]) == (2, "TaskRes", "TaskRes")
