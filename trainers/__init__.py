"""Every method, discovered and registered in ``TRAINER_REGISTRY`` on ``import trainers``.

Why discovery: adding a method must not mean editing this file or any table. A *method module* is any module of
this package, or one named in ``TASKRES_METHODS``, that defines ``add_config(cfg)``; its trainer classes declare
``SPEC = declare(...)``. Discovery rules and the checks made at import: docs/add-a-method.md.
"""
import importlib
import os
import pkgutil
import traceback
from types import ModuleType
from typing import Dict, List

from engine import TRAINER_REGISTRY
from trainers.base import add_clip_config
from trainers.spec import CacheRequest, KeyViews, MethodSpec, ResultVariant, SpecError, declare

__all__ = ["CacheRequest", "KeyViews", "MethodSpec", "ResultVariant", "SpecError", "declare", "declared_methods",
           "method_spec", "add_trainer_configs", "METHOD_MODULES", "MethodModuleError", "UnknownMethodError"]

PLUGIN_ENV = "TASKRES_METHODS"
# Files that raise SpecError on behalf of a declaration elsewhere: an error names the declaring file instead.
_CHECKERS = {os.path.join(os.path.dirname(os.path.abspath(__file__)), f) for f in ("base.py", "spec.py")}


class MethodModuleError(ImportError):
    """A method module cannot be used: a wrong declaration in it, or a ``TASKRES_METHODS`` name that is no
    importable method module. The message is one line naming the file or the name."""


def _import_method_module(name: str) -> ModuleType:
    """Import one module; a wrong declaration in it (or in a module it imports) becomes one line naming the file
    that holds the declaration."""
    try:
        return importlib.import_module(name)
    except SpecError as err:
        frames = [f.f_code.co_filename for f, _ in traceback.walk_tb(err.__traceback__)]
        where = [f for f in frames if not f.startswith("<") and os.path.abspath(f) not in _CHECKERS]
        raise MethodModuleError(f"{where[-1] if where else name}: {err}") from None


def _plugin_modules() -> List[ModuleType]:
    modules = []
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGIN_ENV, "").split(","))):
        try:
            module = _import_method_module(name)
        except MethodModuleError:
            raise
        except ImportError as err:
            raise MethodModuleError(f"{PLUGIN_ENV} names {name!r}, which cannot be imported ({err}); put its folder "
                                    "on PYTHONPATH or fix the module path") from err
        if not callable(getattr(module, "add_config", None)):
            raise MethodModuleError(f"{PLUGIN_ENV} names {name!r}, which defines no add_config(cfg); a method module "
                                    "declares its config defaults there (see docs/add-a-method.md)")
        modules.append(module)
    return modules


def _registered_classes(module: ModuleType) -> Dict[str, type]:
    """The classes defined in ``module`` and registered under their own name."""
    registered = set(TRAINER_REGISTRY.registered_names())
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and obj.__module__ == module.__name__ and name in registered
            and TRAINER_REGISTRY.get(name) is obj}


def _check_declared(module: ModuleType) -> None:
    """Every registered class of ``module`` has its own ``SPEC``; an unset ``label`` becomes the trainer name."""
    for name, cls in _registered_classes(module).items():
        spec = cls.__dict__.get("SPEC")
        if not isinstance(spec, MethodSpec):
            raise MethodModuleError(f"{module.__file__}: the registered trainer {name} declares no SPEC of its own; "
                                    "add SPEC = declare(config_node=..., ...) to the class (docs/add-a-method.md)")
        if spec.label is None:
            cls.SPEC = spec.derive(label=name)


def _discover() -> List[ModuleType]:
    """This package's method modules (alphabetical), then the plugins, in the order given; each one checked."""
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = _import_method_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "add_config", None)):
            modules.append(module)
    modules += _plugin_modules()
    for module in modules:
        _check_declared(module)
    return modules


METHOD_MODULES: List[ModuleType] = _discover()


def add_trainer_configs(cfg) -> None:
    """Add every method's config keys (idempotent)."""
    add_clip_config(cfg)
    for module in METHOD_MODULES:
        module.add_config(cfg)


def declared_methods() -> Dict[str, type]:
    """Trainer name -> class, for every registered trainer class defined in a method module (discovery order)."""
    return {name: cls for module in METHOD_MODULES for name, cls in _registered_classes(module).items()}


class UnknownMethodError(KeyError):
    """No registered method has this name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def method_spec(name: str) -> MethodSpec:
    """The declaration of the method registered as ``name`` (one line listing the known methods if none is)."""
    methods = declared_methods()
    if name not in methods:
        raise UnknownMethodError(f"Unknown method {name!r}; known: {', '.join(methods)}")
    return methods[name].SPEC  # every declared class has its own (checked at discovery)
