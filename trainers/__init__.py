"""Every method, registered in ``TRAINER_REGISTRY`` on ``import trainers``.

Registry contract: a trainer is built as ``cls(cfg)``, provides ``train()``, ``test()`` and
``load_model(dir, epoch)``, and adds its config keys through a function listed in ``CONFIG_ADDERS``.
"""
from trainers import clip_adapter, coop, linear_probe, taskres, tip_adapter, zeroshot  # noqa: F401  (registration)
from trainers.base import add_clip_config
from trainers.clip_adapter import add_clip_adapter_config
from trainers.coop import add_coop_config
from trainers.linear_probe import add_linear_probe_config
from trainers.taskres import add_taskres_config
from trainers.tip_adapter import add_tip_adapter_config
from trainers.zeroshot import add_zeroshot_config

CONFIG_ADDERS = [add_clip_config, add_zeroshot_config, add_taskres_config, add_linear_probe_config, add_coop_config,
                 add_clip_adapter_config, add_tip_adapter_config]


def add_trainer_configs(cfg) -> None:
    """Add every method's config keys (idempotent)."""
    for add in CONFIG_ADDERS:
        add(cfg)
