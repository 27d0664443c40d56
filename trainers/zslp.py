"""ZS-LP (Silva-Rodriguez et al., CVPR 2024): a linear probe initialised with CLIP's zero-shot prototypes.

The head, templates, training views and published setting are shared with CLAP and live in
``trainers/probe.py``; this module declares the method: config defaults (``add_config``), display name
(``LABEL``), and inherits its trainable parameters (``TRAINABLE``), head (``build_head``) and recipe
(``RECIPE_CONFIG``, ``recipe``). ``import trainers`` finds it.
"""
from engine import TRAINER_REGISTRY
from trainers.probe import PrototypeProbeTrainer


def add_config(cfg) -> None:
    from yacs.config import CfgNode as CN

    if "ZSLP" not in cfg.TRAINER:
        cfg.TRAINER.ZSLP = CN()
        cfg.TRAINER.ZSLP.PREC = "fp16"


@TRAINER_REGISTRY.register()
class ZSLP(PrototypeProbeTrainer):
    """Zero-shot-initialised linear probe, cross-entropy only."""

    CONFIG_NODE = "ZSLP"
    LABEL = "ZS-LP"
