"""A method's declaration: one frozen, validated ``MethodSpec`` per trainer class (``SPEC``).

Why one record: the grid, the run bookkeeping, the cost model and ``metrics.json`` all need to know what
a method trains, what it reads and how it is shown. Loose class attributes read with ``getattr`` ignored a
misspelt declaration silently; a dataclass refuses an unknown field at import, in one line. Each field's
meaning: docs/add-a-method.md. This module imports neither torch nor the engine (bookkeeping reads it cheaply).
"""
import difflib
from dataclasses import dataclass, fields, replace
from typing import Callable, Mapping, Optional, Tuple

ENCODERS = ("image", "text")
SPLITS = ("train", "val", "test")
IMAGE_FEATURES = ("projected", "pre_projection")
# How a method's training views are made (``CacheRequest.train_views``).
TRAIN_VIEWS = (
    "epoch",  # one augmented view per image per epoch (the paper's protocol; FEATURE_CACHE.NUM_VIEWS k: k views)
    "pool",   # the method's own fixed pool of ``pool`` augmented views, epoch e trains on view e % pool
    "plain",  # one un-augmented view (the test transform): the method fits on plain features
    "none",   # no training views (nothing fitted on train images, or only ``keys``)
)


class SpecError(TypeError):
    """A method's declaration is wrong (unknown field, bad value); the message names the field."""


@dataclass(frozen=True)
class KeyViews:
    """Extra augmented views of the training images, with their own augmentation (``crop_scale`` and
    ``transforms`` replace ``INPUT.RRCROP_SCALE`` and ``INPUT.TRANSFORMS``), count (``TRAINER.<node>.<count_key>``)
    and seed (the run's plus ``seed_offset``, a stream apart from the training views'): Tip-Adapter's cache keys.
    """

    crop_scale: Tuple[float, float]
    count_key: str
    seed_offset: int = 0
    transforms: Tuple[str, ...] = ("random_resized_crop", "random_flip", "normalize")

    def input_config(self, cfg):
        """A copy of ``cfg`` whose ``INPUT`` builds these views' augmentation (``build_transform(.., is_train=True)``)."""
        cfg = cfg.clone()
        cfg.defrost()
        cfg.INPUT.RRCROP_SCALE = tuple(self.crop_scale)
        cfg.INPUT.TRANSFORMS = tuple(self.transforms)
        return cfg

    def views(self, method_cfg) -> int:
        return int(method_cfg[self.count_key])

    def seed(self, run_seed: int) -> int:
        return max(int(run_seed), 0) + self.seed_offset


@dataclass(frozen=True)
class CacheRequest:
    """What a method reads from the feature cache, read by training (``trainers/base.py``) and by the grid's
    cost model (``scripts/reproduce/cost.py``), so neither names a method.

    ``image_features``: ``projected`` (CLIP's image features) or ``pre_projection`` (before the image
    projection, for a method that trains it; cached apart). A method that adapts the image encoder reads no
    image features whatever it declares here.
    """

    splits: Tuple[str, ...] = SPLITS
    train_views: str = "epoch"
    pool: int = 0
    keys: Optional[KeyViews] = None
    image_features: str = "projected"

    def __post_init__(self):
        bad = [s for s in self.splits if s not in SPLITS]
        if bad or "test" not in self.splits:
            raise SpecError(f"CacheRequest.splits: {list(self.splits)} must include 'test' and name only {SPLITS}")
        if self.image_features not in IMAGE_FEATURES:
            raise SpecError(f"CacheRequest.image_features must be one of {IMAGE_FEATURES}, not {self.image_features!r}")
        if self.train_views not in TRAIN_VIEWS:
            raise SpecError(f"CacheRequest.train_views must be one of {TRAIN_VIEWS}, not {self.train_views!r}")
        if (self.train_views == "pool") != (self.pool > 0):
            raise SpecError("CacheRequest: train_views='pool' needs pool > 0 (its number of views), and only it")
        reads_train = self.train_views != "none" or self.keys is not None
        if reads_train != ("train" in self.splits):
            raise SpecError(f"CacheRequest.splits {list(self.splits)} and train_views={self.train_views!r}, "
                            f"keys={self.keys is not None} disagree: 'train' is read iff it declares training or "
                            "key views")

    def train_view_count(self, num_views_option: int, epochs: int) -> int:
        """Training views per image: ``FEATURE_CACHE.NUM_VIEWS`` when set, else the pool or one per epoch."""
        if self.train_views in ("plain", "none"):
            return int(self.train_views == "plain")
        return int(num_views_option) or self.pool or max(1, int(epochs))


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
    """Everything the rest of the project knows about a method, declared once on its trainer class
    (``docs/add-a-method.md`` says what each field does)."""

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
    cache: CacheRequest = CacheRequest()
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
        if not isinstance(self.cache, CacheRequest):
            raise SpecError(f"MethodSpec.cache must be a CacheRequest, not {self.cache!r}")
        for name in ("trainable", "adapted_encoders", "launch_only_keys", "variants"):
            if isinstance(getattr(self, name), (str, list)):
                raise SpecError(f"MethodSpec.{name} must be a tuple, not {getattr(self, name)!r}")

    def settings(self, dataset: str, shots: int) -> dict:
        """The recipe's ``KEY VALUE`` settings for a dataset (config name) and shot count ({} without a recipe)."""
        return dict(self.recipe(dataset, shots)) if self.recipe is not None else {}

    def derive(self, **changes) -> "MethodSpec":
        """This declaration with some fields changed (a subclass's), validated as ``declare`` validates."""
        _check_fields(changes)
        return replace(self, **changes)


SPEC_FIELDS = tuple(f.name for f in fields(MethodSpec))


def _check_fields(kwargs) -> None:
    unknown = [k for k in kwargs if k not in SPEC_FIELDS]
    if unknown:
        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, SPEC_FIELDS, 1)) else k
                 for k in unknown]
        raise SpecError(f"unknown MethodSpec field(s): {', '.join(hints)}")


def declare(**kwargs) -> MethodSpec:
    """``MethodSpec(**kwargs)`` with a one-line error naming a misspelt field and the nearest valid one."""
    _check_fields(kwargs)
    return MethodSpec(**kwargs)
