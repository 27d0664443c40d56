"""A method's declaration: one frozen, validated ``MethodSpec`` per trainer class (``SPEC``).

Why one record: the grid, the run bookkeeping, the cost model and ``metrics.json`` all need to know what
a method trains, what it reads and how it is shown. Read with ``getattr(cls, NAME, default)`` from loose
class attributes, a misspelt declaration was silently ignored; a dataclass refuses an unknown field at
import, in one line, and ``__post_init__`` checks the values.

This module imports neither torch nor the engine: the bookkeeping layer reads specs cheaply.
"""
import difflib
from dataclasses import dataclass, field, fields
from typing import Callable, Mapping, Optional, Tuple

ENCODERS = ("image", "text")


class SpecError(TypeError):
    """A method's declaration is wrong (unknown field, bad value); the message names the field."""


@dataclass(frozen=True)
class ResultVariant:
    """A second result a trainer makes when one config key is set (TaskRes* = TaskRes from an enhanced base).

    ``key`` set (non-empty, not "none") makes the run's result ``name`` (shown as ``label``). A launcher passes
    it with ``flag`` (a ``train.py`` flag) and names the run folder with ``folder_suffix``; the key is named by
    the folder, so it is no deviation from the recipe.
    """

    key: str
    name: str
    label: str
    flag: str = ""
    folder_suffix: str = ""
    help: str = ""

    def applies(self, value) -> bool:
        return bool(value) and str(value).lower() != "none"


@dataclass(frozen=True)
class MethodSpec:
    """Everything the rest of the project knows about a method, declared once on its trainer class.

    Behaviour: ``config_node`` (``cfg.TRAINER.<node>``), ``trainable`` (exact head parameter names; None: see
    ``trainable_pattern``), ``adapted_encoders``, ``training_free``, ``lr_step_every_batch``, ``selects_on_val``,
    ``class_agnostic``, ``shot_free``, ``launch_only_keys`` (full key names), ``cache`` (what it reads from the feature cache), ``recipe_config`` and
    ``recipe(dataset, shots) -> {KEY: VALUE}``; ``published_recipe`` False for a recipe of ours (not the
    paper's). Presentation: ``label``, ``table_order`` (the paper's methods first), ``variants``.
    """

    config_node: str
    checkpoint_name: str = "head"
    trainable: Optional[Tuple[str, ...]] = ()
    trainable_pattern: Optional[str] = None
    adapted_encoders: Tuple[str, ...] = ()
    training_free: bool = False
    lr_step_every_batch: bool = False
    selects_on_val: bool = False
    class_agnostic: bool = False
    shot_free: bool = False
    launch_only_keys: Tuple[str, ...] = ()  # keys of its node that never change a result (memory bounds, exact speed-ups)
    cache: object = None  # trainers.spec.CacheRequest once declared by the cache seam; None: the default reads
    recipe_config: Optional[str] = None
    recipe: Optional[Callable[[str, int], Mapping[str, object]]] = None
    published_recipe: bool = True
    label: Optional[str] = None
    table_order: Optional[int] = None
    variants: Tuple[ResultVariant, ...] = ()

    def __post_init__(self):
        if not self.config_node or not isinstance(self.config_node, str):
            raise SpecError("MethodSpec.config_node must name the method's config node (cfg.TRAINER.<node>)")
        bad = [e for e in self.adapted_encoders if e not in ENCODERS]
        if bad:
            raise SpecError(f"MethodSpec.adapted_encoders: {bad} are not encoders; use {ENCODERS}")
        if self.trainable is None and not self.trainable_pattern:
            raise SpecError("MethodSpec: trainable=None needs a trainable_pattern (a regex every trainable name matches)")
        if self.recipe is not None and self.recipe_config is None:
            raise SpecError("MethodSpec.recipe needs recipe_config (the recipe's config file)")
        if self.table_order is not None and not isinstance(self.table_order, int):
            raise SpecError(f"MethodSpec.table_order must be an int, not {self.table_order!r}")

    def settings(self, dataset: str, shots: int) -> dict:
        """The recipe's ``KEY VALUE`` settings for a dataset (config name) and shot count ({} without a recipe)."""
        return dict(self.recipe(dataset, shots)) if self.recipe is not None else {}


SPEC_FIELDS = tuple(f.name for f in fields(MethodSpec))


def declare(**kwargs) -> MethodSpec:
    """``MethodSpec(**kwargs)`` with a one-line error naming a misspelt field and the nearest valid one."""
    unknown = [k for k in kwargs if k not in SPEC_FIELDS]
    if unknown:
        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, SPEC_FIELDS, 1)) else k
                 for k in unknown]
        raise SpecError(f"unknown MethodSpec field(s): {', '.join(hints)}")
    return MethodSpec(**kwargs)
