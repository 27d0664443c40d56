"""benchmarks/gpu_check.py in its tiny CPU mode: the GPU check's own code path (every method trains, evaluates
from its checkpoint and resumes after SIGINT; encoder and projection rows), so it cannot rot between GPU runs."""
import json
import os

import pytest

import trainers
from benchmarks import gpu_check


def _results(out_dir):
    (stem,) = {os.path.splitext(f)[0] for f in os.listdir(out_dir)}
    with open(os.path.join(out_dir, stem + ".json")) as f:
        data = json.load(f)
    with open(os.path.join(out_dir, stem + ".md")) as f:
        return data, f.read()


@pytest.mark.slow
def test_tiny_check_runs_every_method_and_resumes(tmp_path):
    rc = gpu_check.main(["--device", "cpu", "--tiny", "--out-dir", str(tmp_path / "out"),
                         "--workdir", str(tmp_path / "work")])
    data, md = _results(tmp_path / "out")
    assert rc == 0, [s for s in data["steps"] if s["status"] != "ok"]
    rows = {r["method"]: r for r in data["methods"]}
    assert set(rows) == set(trainers.declared_methods())
    for name, row in rows.items():
        assert row["error"] is None and 0 <= row["accuracy"] <= 100, row
        saves = trainers.method_spec(name).checkpoint_name and not name.startswith("Zeroshot")
        assert row["eval_match"] is True or str(row["eval_match"]).startswith("n/a"), row
        if saves:
            assert row["eval_match"] is True, row
    assert {r["arch"] for r in data["encoder"]} == {"RN50", "ViT-B/16"}
    assert all(r["extraction_views_per_s"] > 0 and r["encoder_limit_views_per_s"] > 0 for r in data["encoder"])
    assert data["resume"]["interrupted"] and data["resume"]["equal"]
    assert data["projection"]["extraction_h"] > 0
    assert "| TaskRes | RN50 |" in md and "SIGINT + resume" in md


def test_out_of_time_leaves_partial_results_and_fails(tmp_path):
    rc = gpu_check.main(["--device", "cpu", "--tiny", "--budget-s", "0.5", "--methods", "TaskRes",
                         "--out-dir", str(tmp_path / "out"), "--workdir", str(tmp_path / "work")])
    data, md = _results(tmp_path / "out")
    assert rc == 1
    assert data["steps"] and all(s["status"] in ("ok", "failed", "skipped") for s in data["steps"])
    assert any(s["status"] != "ok" for s in data["steps"])
    assert [r["method"] for r in data["methods"]] == ["TaskRes"] and data["methods"][0]["error"]
    assert "| data |" in md
