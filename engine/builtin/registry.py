"""Name -> class registries, with Dassl's ``Registry`` interface (``register``, ``get``, ``registered_names``)."""
from typing import Callable, Dict, List, Optional


class Registry:
    """Maps names to classes so that a config string can pick one.

    Contract: a registered trainer is constructed as ``cls(cfg)`` and provides ``train()`` and
    ``test()``; a registered dataset is constructed as ``cls(cfg)`` and is a ``DatasetBase``.
    """

    def __init__(self, name: str):
        self._name = name
        self._obj_map: Dict[str, type] = {}

    def _do_register(self, name: str, obj: type, force: bool = False) -> None:
        if name in self._obj_map and not force:
            raise KeyError(f'An object named "{name}" was already registered in "{self._name}" registry')
        self._obj_map[name] = obj

    def register(self, obj: Optional[type] = None, force: bool = False) -> Callable:
        if obj is None:
            def deco(func_or_class):
                self._do_register(func_or_class.__name__, func_or_class, force=force)
                return func_or_class
            return deco
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name: str) -> type:
        if name not in self._obj_map:
            raise KeyError(
                f'Unknown {self._name.lower()} "{name}". Valid names: {", ".join(sorted(self._obj_map))}'
            )
        return self._obj_map[name]

    def registered_names(self) -> List[str]:
        return list(self._obj_map.keys())

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map


TRAINER_REGISTRY = Registry("TRAINER")
DATASET_REGISTRY = Registry("DATASET")
