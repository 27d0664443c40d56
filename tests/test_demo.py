"""The embedded default: scripts/demo.sh on the digits, offline (tiny random CLIP)."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every test here trains end to end

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTICE = "tiny RANDOM CLIP"


def _demo(out, *args):
    env = dict(os.environ, PYTHON=sys.executable, TASKRES_ENGINE="builtin")
    res = subprocess.run(["bash", "scripts/demo.sh", "--output", str(out), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _rows(table):
    return {line.split("|")[1].strip(): float(line.split("|")[2]) for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| method")}


def test_offline_demo_table_plot_notice_and_never_a_stale_run(tmp_path, tiny_clip):
    stdout = _demo(tmp_path, "--offline", "--methods", "ZeroshotCLIP", "TaskRes", "--shots", "2")
    table = (tmp_path / "results.md").read_text()
    # The notice stands beside the table, on the console and in results.md.
    assert table.startswith(f"**NOTICE: offline demo with a {NOTICE}")
    table_on_console = stdout[stdout.index("Digits, 2-shot"):]
    assert NOTICE in stdout[stdout.index("Digits, 2-shot") - 300:stdout.index("Digits, 2-shot")]
    assert "| Zero-shot CLIP |" in table_on_console and "| TaskRes |" in table
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "results.png" in table
    split = json.loads((tmp_path / "data" / "caltech-101" / "split_zhou_Caltech101.json").read_text())
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 1797  # every scikit-learn digit
    assert sorted({c for _, _, c in split["train"]}) == sorted(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    [run] = list((tmp_path / "runs" / "TaskRes").glob("tiny_random_clip_2shots*/seed1"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["shots"] == 2 and metrics["dataset"] == "Caltech101"
    assert _rows(table)["TaskRes"] == round(metrics["accuracy"], 1)

    # Other shots: a new run and a table of its own numbers, never the 2-shot ones.
    stdout = _demo(tmp_path, "--offline", "--methods", "TaskRes", "--shots", "4")
    assert "[skip]" not in stdout and "Digits, 4-shot" in stdout
    [run4] = list((tmp_path / "runs" / "TaskRes").glob("tiny_random_clip_4shots*/seed1"))
    m4 = json.loads((run4 / "metrics.json").read_text())
    assert m4["shots"] == 4 and _rows((tmp_path / "results.md").read_text())["TaskRes"] == round(m4["accuracy"], 1)

    # A checkpoint file as the backbone (not the random demo CLIP): its own run, and no random-weights notice.
    stdout = _demo(tmp_path, "--backbone", tiny_clip, "--input-size", "32", "--methods", "TaskRes",
                   "--shots", "4")
    assert "[skip]" not in stdout and "[run] TaskRes" in stdout
    runs = sorted(p.parent.name for p in (tmp_path / "runs" / "TaskRes").glob("*/seed1"))
    assert len(runs) == 3 and runs[2].startswith("tiny_vit_4shots")
    table = (tmp_path / "results.md").read_text()
    assert NOTICE not in table and "backbone tiny-vit.pt" in table
