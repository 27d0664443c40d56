"""Every method, registered in ``TRAINER_REGISTRY`` on ``import trainers``.

Registry contract: a trainer is built as ``cls(cfg)``, provides ``train()``, ``test()`` and
``load_model(dir, epoch)``, and adds its config keys through a function listed in ``CONFIG_ADDERS``.
"""
from trainers import taskres, zeroshot  # noqa: F401  (registration)
from trainers.base import add_clip_config
from trainers.taskres import add_taskres_config
from trainers.zeroshot import add_zeroshot_config

CONFIG_ADDERS = [add_clip_config, add_zeroshot_config, add_taskres_config]


def add_trainer_configs(cfg) -> None:
    """Add every method's config keys (idempotent)."""
    for add in CONFIG_ADDERS:
        add(cfg)
