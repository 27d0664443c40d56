"""Every method, discovered and registered in ``TRAINER_REGISTRY`` on ``import trainers``.

Why discovery: adding a method must not mean editing this file, the recipe table or the name table.
A *method module* is any module of this package (or one named in ``TASKRES_METHODS``, a comma-separated
list of importable module paths: a method kept outside the repository) that defines ``add_config(cfg)``
(its config defaults) — that function is the marker. Importing it registers its trainer classes
(``@TRAINER_REGISTRY.register()``); each class declares its trainable parameters (``TRAINABLE``), its
head (``build_head``), its display name (``LABEL``) and its recipe (``RECIPE_CONFIG`` + ``recipe``), read by
``tools/names.py`` and ``scripts/reproduce/recipes.py`` through ``declared_methods()``.

Registry contract: a trainer is built as ``cls(cfg)`` and provides ``train()``, ``test()`` and
``load_model(dir, epoch)``.
"""
import importlib
import os
import pkgutil
from types import ModuleType
from typing import Dict, List

from trainers.base import add_clip_config
from trainers.spec import MethodSpec, ResultVariant, declare

PLUGIN_ENV = "TASKRES_METHODS"


class MethodModuleError(ImportError):
    """A module named in ``TASKRES_METHODS`` cannot be used as a method module."""


def _plugin_modules() -> List[ModuleType]:
    modules = []
    for name in (n.strip() for n in os.environ.get(PLUGIN_ENV, "").split(",")):
        if not name:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise MethodModuleError(f"{PLUGIN_ENV} names {name!r}, which cannot be imported ({err}); put its folder "
                                    "on PYTHONPATH or fix the module path") from err
        if not callable(getattr(module, "add_config", None)):
            raise MethodModuleError(f"{PLUGIN_ENV} names {name!r}, which defines no add_config(cfg); a method module "
                                    "declares its config defaults there (see README, 'Add your method')")
        modules.append(module)
    return modules


def _discover() -> List[ModuleType]:
    """This package's method modules (alphabetical), then the plugins, in the order given."""
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "add_config", None)):
            modules.append(module)
    return modules + _plugin_modules()


METHOD_MODULES: List[ModuleType] = _discover()
CONFIG_ADDERS = [add_clip_config] + [m.add_config for m in METHOD_MODULES]


def add_trainer_configs(cfg) -> None:
    """Add every method's config keys (idempotent)."""
    for add in CONFIG_ADDERS:
        add(cfg)


def declared_methods() -> Dict[str, type]:
    """Trainer name -> class, for every registered trainer class defined in a method module (discovery order)."""
    from engine import TRAINER_REGISTRY

    registered = set(TRAINER_REGISTRY.registered_names())
    found: Dict[str, type] = {}
    for module in METHOD_MODULES:
        for name, obj in vars(module).items():
            if (isinstance(obj, type) and obj.__module__ == module.__name__ and name in registered
                    and TRAINER_REGISTRY.get(name) is obj):
                found[name] = obj
    return found


class UnknownMethodError(KeyError):
    """No registered method has this name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def method_spec(name: str) -> MethodSpec:
    """The declaration of the method registered as ``name`` (one line listing the known methods if none is)."""
    cls = declared_methods().get(name)
    if cls is None:
        raise UnknownMethodError(f"Unknown method {name!r}; known: {', '.join(declared_methods())}")
    return spec_of(cls)


def spec_of(cls: type) -> MethodSpec:
    """A trainer class's ``SPEC``.

    Interim, until every method declares ``SPEC = declare(...)``: a class without one is described from its
    legacy class attributes (``CONFIG_NODE``, ``LABEL``, ...). This adapter goes when the last method moves.
    """
    own = cls.__dict__.get("SPEC")
    if isinstance(own, MethodSpec):
        return own
    return declare(
        config_node=cls.CONFIG_NODE, checkpoint_name=cls.CHECKPOINT_NAME, trainable=cls.TRAINABLE,
        trainable_pattern=cls.TRAINABLE_PATTERN, adapted_encoders=tuple(cls.ADAPTED_ENCODERS),
        training_free=bool(cls.TRAINING_FREE), lr_step_every_batch=bool(cls.LR_STEP_EVERY_BATCH),
        selects_on_val=bool(getattr(cls, "SELECTS_ON_VAL", False)), class_agnostic=bool(cls.CLASS_AGNOSTIC),
        shot_free=bool(getattr(cls, "SHOT_FREE", False)),
        launch_only_keys={"CoOp": ("TRAINER.COOP.TRUNCATE_CONTEXT",),
                          "CoCoOp": ("TRAINER.COCOOP.PROMPTS_PER_CALL",)}.get(cls.__name__, ()),
        recipe_config=cls.RECIPE_CONFIG,
        recipe=cls.recipe if cls.RECIPE_CONFIG is not None else None,
        published_recipe=bool(getattr(cls, "PUBLISHED_RECIPE", True)), label=cls.LABEL or cls.__name__,
        table_order=getattr(cls, "TABLE_ORDER", None), variants=tuple(getattr(cls, "VARIANTS", ())))
