"""My probe: zero-shot CLIP plus a trained per-class bias, on cached image features.

A complete method in one file, kept outside ``trainers/``: run it with
``PYTHONPATH=examples TASKRES_METHODS=my_probe`` (docs/add-a-method.md). tests/test_method_plugin.py runs
this file through the launcher, train.py and the report.
"""
import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from trainers import declare
from trainers.base import ClipTrainer
from trainers.heads import cosine_logits
from trainers.text_classifier import build_zero_shot_classifier


def add_config(cfg):
    """The method's config defaults (``cfg.TRAINER.MY_PROBE``); defining it marks a method module."""
    from yacs.config import CfgNode as CN

    if "MY_PROBE" not in cfg.TRAINER:
        cfg.TRAINER.MY_PROBE = CN()
        cfg.TRAINER.MY_PROBE.PREC = "fp16"


def my_probe_recipe(dataset, shots):
    """Settings by dataset (config name) and shot count, on top of ``recipe_config``."""
    return {"OPTIM.LR": 0.01, "OPTIM.MAX_EPOCH": 20}


class BiasHead(nn.Module):
    """Float image features [B, D] -> logits [B, C]: the shared cosine logits, plus a trained bias per class."""

    def __init__(self, text, logit_scale):
        super().__init__()
        self.register_buffer("text", F.normalize(text, dim=-1), persistent=False)
        self.bias = nn.Parameter(torch.zeros(text.shape[0]))
        self.logit_scale = logit_scale

    def forward(self, features):
        return cosine_logits(features, self.text, self.logit_scale, weights_normalized=True) + self.bias


@TRAINER_REGISTRY.register()
class MyProbe(ClipTrainer):
    SPEC = declare(
        config_node="MY_PROBE",   # cfg.TRAINER.MY_PROBE
        trainable=("bias",),      # checked when the model is built: nothing else may train
        label="My probe",         # its name in tables and plots
        recipe_config="configs/trainers/CLAP/rn50.yaml",  # SGD, batch 256, cosine
        recipe=my_probe_recipe)

    def build_head(self):
        text = build_zero_shot_classifier(self.clip, self.classnames, self.templates)
        return BiasHead(text, self.clip.logit_scale)
