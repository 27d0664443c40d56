"""ZS-LP (Silva-Rodriguez et al., CVPR 2024): a linear probe initialised with CLIP's zero-shot prototypes.

The head, templates, training views and published setting (``PROBE``) are shared with CLAP in
``trainers/probe.py``; this module adds the config node and the trainer. ``import trainers`` finds it.
"""
from engine import TRAINER_REGISTRY
from trainers.base import add_method_config
from trainers.probe import PROBE, PrototypeProbeTrainer
from trainers.spec import declare


def add_config(cfg) -> None:
    add_method_config(cfg, "ZSLP", PREC="fp16")


@TRAINER_REGISTRY.register()
class ZSLP(PrototypeProbeTrainer):
    """Zero-shot-initialised linear probe, cross-entropy only."""

    SPEC = declare(config_node="ZSLP", label="ZS-LP", **PROBE)
