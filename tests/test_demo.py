"""The embedded default: scripts/demo.sh on the digits, offline (tiny random CLIP)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_offline_demo_runs_methods_and_writes_a_table(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, TASKRES_ENGINE="builtin")
    res = subprocess.run(["bash", "scripts/demo.sh", "--offline", "--output", str(tmp_path), "--methods", "ZeroshotCLIP",
                          "TaskRes", "--shots", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "tiny RANDOM CLIP" in res.stdout + res.stderr
    table = (tmp_path / "results.md").read_text()
    assert "| ZeroshotCLIP |" in table and "| TaskRes |" in table
    split = json.loads((tmp_path / "data" / "caltech-101" / "split_zhou_Caltech101.json").read_text())
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 1797  # every scikit-learn digit
    assert sorted({c for _, _, c in split["train"]}) == sorted(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    metrics = json.loads((tmp_path / "runs" / "TaskRes" / "metrics.json").read_text())
    assert metrics["shots"] == 2 and metrics["dataset"] == "Caltech101"
