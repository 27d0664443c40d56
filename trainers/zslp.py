"""ZS-LP (Silva-Rodriguez et al., CVPR 2024): a linear probe initialised with CLIP's zero-shot prototypes.

The head, templates, training views and published setting are shared with CLAP and live in
``trainers/probe.py``; this module declares the method: config defaults (``add_config``) and its ``SPEC``
(config node and display name, plus the shared ``PROBE`` declaration: trainable parameters, cache request,
recipe); it inherits the head (``build_head``). ``import trainers`` finds it.
"""
from engine import TRAINER_REGISTRY
from trainers.probe import PROBE, PrototypeProbeTrainer
from trainers.spec import declare


def add_config(cfg) -> None:
    from yacs.config import CfgNode as CN

    if "ZSLP" not in cfg.TRAINER:
        cfg.TRAINER.ZSLP = CN()
        cfg.TRAINER.ZSLP.PREC = "fp16"


@TRAINER_REGISTRY.register()
class ZSLP(PrototypeProbeTrainer):
    """Zero-shot-initialised linear probe, cross-entropy only."""

    SPEC = declare(config_node="ZSLP", label="ZS-LP", **PROBE)
