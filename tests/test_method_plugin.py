"""A method added from ONE file outside the repository (``TASKRES_METHODS``) runs through the generic
launcher (``scripts/method/main.sh``, recipe from the file), ``train.py`` and the report, and is named
there by the display name the file declares: no edit to trainers/, tools/names.py or recipes.py."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The README's "Add your method" example, with a test-sized recipe.
METHOD_FILE = '''
"""My probe: zero-shot CLIP plus a trainable per-class bias."""
import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from trainers.base import ClipTrainer
from trainers.heads import cosine_logits
from trainers.text_classifier import build_zero_shot_classifier


def add_config(cfg):  # config defaults; also the marker that makes this a method module
    from yacs.config import CfgNode as CN
    if "MY_PROBE" not in cfg.TRAINER:
        cfg.TRAINER.MY_PROBE = CN()
        cfg.TRAINER.MY_PROBE.PREC = "fp32"


class BiasHead(nn.Module):
    def __init__(self, text, logit_scale):
        super().__init__()
        self.register_buffer("text", F.normalize(text, dim=-1), persistent=False)
        self.bias = nn.Parameter(torch.zeros(text.shape[0]))
        self.logit_scale = logit_scale

    def forward(self, features):
        return cosine_logits(features, self.text, self.logit_scale, weights_normalized=True) + self.bias


@TRAINER_REGISTRY.register()
class MyProbe(ClipTrainer):
    CONFIG_NODE = "MY_PROBE"
    TRAINABLE = ("bias",)
    LABEL = "My probe"
    RECIPE_CONFIG = "configs/trainers/CLAP/rn50.yaml"

    @staticmethod
    def recipe(dataset, shots):
        return {"OPTIM.LR": 0.01, "OPTIM.MAX_EPOCH": 2, "DATALOADER.TRAIN_X.BATCH_SIZE": 8,
                "FEATURE_CACHE.NUM_VIEWS": 2}

    def build_head(self):
        text = build_zero_shot_classifier(self.clip, self.classnames, self.templates)
        return BiasHead(text, self.clip.logit_scale)
'''


@pytest.mark.slow
def test_a_method_from_one_file_runs_through_launcher_train_and_report(data_root, tiny_clip, tmp_path):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "my_probe.py").write_text(METHOD_FILE)
    out = tmp_path / "output"
    env = dict(os.environ, DATA=data_root, BACKBONE=tiny_clip, OUTPUT=str(out), PYTHON=sys.executable, SEEDS="1",
               TASKRES_ENGINE="builtin", TASKRES_METHODS="my_probe",
               PYTHONPATH=os.pathsep.join([str(plugin), REPO, os.environ.get("PYTHONPATH", "")]),
               EXTRA_OPTS="DATALOADER.NUM_WORKERS 0")
    env.pop("INPUT_SIZE", None)
    run = subprocess.run(["bash", "scripts/method/main.sh", "MyProbe", "caltech101", "4"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    runs = [os.path.join(d, "metrics.json") for d, _, files in os.walk(out / "caltech101" / "MyProbe")
            if "metrics.json" in files]
    assert len(runs) == 1, runs
    with open(runs[0]) as f:
        metrics = json.load(f)
    assert metrics["method"] == "MyProbe" and metrics["epochs"] == 2 and metrics["modified"] in ({}, None, [])
    report = subprocess.run([sys.executable, "-m", "tools.report", str(out), "--out", str(tmp_path / "R.md")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "R.md").read_text()
    assert "My probe" in text, text


def test_a_bad_plugin_path_is_one_clear_error(tmp_path):
    env = dict(os.environ, TASKRES_METHODS="no_such_module_xyz", PYTHONPATH=REPO)
    run = subprocess.run([sys.executable, "-c", "import trainers"], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "TASKRES_METHODS names 'no_such_module_xyz'" in run.stderr
