"""Name -> class registries, with Dassl's ``Registry`` interface (``register``, ``get``, ``registered_names``)."""
from typing import Callable, Dict, List, Optional


class Registry:
    """Maps names to classes so that a config string can pick one; each is built as ``cls(cfg)`` (a trainer
    provides ``train()`` and ``test()``, a dataset is a ``DatasetBase``)."""

    def __init__(self, name: str):
        self._name = name
        self._obj_map: Dict[str, type] = {}

    def register(self, obj: Optional[type] = None, force: bool = False) -> Callable:
        """Register ``obj`` under its ``__name__``; without ``obj``, a decorator that does so."""
        def add(func_or_class: type) -> type:
            name = func_or_class.__name__
            if name in self._obj_map and not force:
                raise KeyError(f'An object named "{name}" was already registered in "{self._name}" registry')
            self._obj_map[name] = func_or_class
            return func_or_class

        return add if obj is None else add(obj)

    def get(self, name: str) -> type:
        if name not in self._obj_map:
            raise KeyError(f'Unknown {self._name.lower()} "{name}". Valid names: {", ".join(sorted(self._obj_map))}')
        return self._obj_map[name]

    def registered_names(self) -> List[str]:
        return list(self._obj_map.keys())


TRAINER_REGISTRY = Registry("TRAINER")
DATASET_REGISTRY = Registry("DATASET")
