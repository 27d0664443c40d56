"""ViT-B/16 is a first-class backbone: ``BACKBONE=ViT-B/16`` through a launcher makes a recipe run (the
OpenAI name recorded in metrics.json, the ``vit_b16`` folder), and the report gives it its own section with
the published ViT-B/16 numbers beside ours.

No ViT-B/16 weights exist here: a tiny random ViT is saved where the loader looks for OpenAI's ViT-B/16 file
(``CLIP_WEIGHTS_DIR``), so the real name-to-file path runs. Its accuracy means nothing; the test checks where
the run goes and what the report prints beside it.
"""
import json
import os
import subprocess
import sys

import pytest

from tools.published import load_published
from trainers.backbone import openai_weights_path
from trainers.random_clip import write_random_clip

pytestmark = pytest.mark.slow  # every test here trains end to end

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def test_vit_b16_launcher_run_is_a_recipe_run_and_the_report_puts_published_numbers_beside_it(data_root, tmp_path):
    weights = tmp_path / "weights"
    write_random_clip(openai_weights_path("ViT-B/16", str(weights)), kind="vit")
    out = tmp_path / "output"
    env = dict(os.environ, DATA=data_root, BACKBONE="ViT-B/16", CLIP_WEIGHTS_DIR=str(weights), OUTPUT=str(out),
               PYTHON=sys.executable, SEEDS="1", TASKRES_ENGINE="builtin",
               EXTRA_OPTS="DATALOADER.NUM_WORKERS 0 FEATURE_CACHE.NUM_WORKERS 0")
    env.pop("INPUT_SIZE", None)
    run = subprocess.run(["bash", "scripts/taskres/main.sh", "imagenet", "1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = out / "imagenet" / "TaskRes" / "vit_b16_1shots" / "seed1"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # The recipe (lr 2e-4 on ImageNet, 100 epochs at 1 shot, alpha 0.5) at the backbone's own 224 px.
    assert metrics["backbone"] == "ViT-B/16" and metrics["recipe"] is True and not metrics["modified"]
    assert metrics["epochs"] == 100

    report = subprocess.run([sys.executable, "-m", "tools.report", str(out), "--out", str(tmp_path / "R.md")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    vit = _section((tmp_path / "R.md").read_text(), "ViT-B/16")
    ours = next(line for line in vit.splitlines() if line.startswith("| TaskRes (ours)") and "—" in line)
    assert f"{metrics['accuracy']:.2f}" in ours
    # Published ViT-B/16 numbers (tools/published.csv) stand beside the run, under the same backbone.
    published = load_published()
    paper = published.get("TaskRes", "ImageNet", 16, "ViT-B/16", tables=("imagenet",))
    assert paper is not None and paper != published.get("TaskRes", "ImageNet", 16, "RN50", tables=("imagenet", "fewshot"))
    imagenet = vit[vit.index("### ImageNet by number of shots"):]
    paper_row = next(line for line in imagenet.splitlines() if line.startswith("| TaskRes (paper)"))
    assert f"{paper:.2f}" in paper_row
    assert "## RN50" not in (tmp_path / "R.md").read_text()  # no RN50 run: no RN50 section
