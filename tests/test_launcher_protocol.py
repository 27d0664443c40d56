"""Issue 11's "done when", through the real launcher: one fresh view per epoch by default (metrics.json
says so), a second alpha on the same data encodes nothing, and a fast-mode run is marked by the report."""
import json
import os
import subprocess
import sys

import pytest

from tools.aggregate import collect

pytestmark = pytest.mark.slow  # every test here trains end to end

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(data, clip, out, *trailing):
    env = dict(os.environ, DATA=str(data), BACKBONE=clip, OUTPUT=str(out), PYTHON=sys.executable, SEEDS="1",
               EPOCHS="3", INPUT_SIZE="32", TASKRES_ENGINE="builtin",
               EXTRA_OPTS="DATALOADER.NUM_WORKERS 0 DATALOADER.TRAIN_X.BATCH_SIZE 8 TRAINER.TaskRes.PREC fp32")
    proc = subprocess.run(["bash", "scripts/taskres/main.sh", "caltech101", "2", *trailing], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _runs(out):
    found = {}
    for dirpath, _, files in os.walk(out):
        if "metrics.json" in files:
            with open(os.path.join(dirpath, "metrics.json")) as f:
                found[dirpath] = json.load(f)
    return found


def test_paper_views_by_default_second_alpha_encodes_nothing_fast_mode_marked(data_root, tiny_clip, tmp_path):
    out = tmp_path / "out"
    _launch(data_root, tiny_clip, out)
    [first] = _runs(out).values()
    info = first["feature_cache_info"]
    assert info["paper_protocol"] is True and info["train_views"] == 3  # one view per epoch
    assert info["splits"]["train"]["encoded_views"] == 3  # views per image, all encoded now

    _launch(data_root, tiny_clip, out, "TRAINER.TaskRes.RESIDUAL_SCALE", "1.0")
    [second] = [m for m in _runs(out).values() if m["fingerprint"] != first["fingerprint"]]
    assert second["feature_cache_info"]["encoded_views"] == 0  # train, val and test all come from the cache

    _launch(data_root, tiny_clip, out, "FEATURE_CACHE.NUM_VIEWS", "1")
    fast = [m for m in _runs(out).values() if m["feature_cache_info"]["paper_protocol"] is False]
    assert len(fast) == 1
    marked = [r for r in collect(str(out)).rows if r.variant.endswith("fast-views")]
    assert len(marked) == 1
