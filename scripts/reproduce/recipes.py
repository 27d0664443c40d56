"""Every method's recipe, in one table read from the methods' own modules: config file and per-dataset/per-shot settings.

A method declares its recipe on its trainer class (``RECIPE_CONFIG``, the config file, and ``recipe(dataset,
shots)``, the ``KEY VALUE`` settings that vary by dataset or shot count or that a config file cannot say;
``SHOT_FREE`` for a method whose result does not depend on shots or seed), in its own module; this module
holds no per-method entry. ``RECIPES[method].options(dataset, shots)`` gives the overrides a grid cell or a
launcher passes to ``train.py`` after ``--config-file``. A recipe is the same for every backbone: the
original codes' backbone configs differ from their RN50 ones only in ``MODEL.BACKBONE.NAME`` (see each
method's declaration for its source).
Config files are checked when a grid is planned (``Recipe.config_path``), not at import, so a
method whose config is not written yet fails with one message instead of breaking the module.
Shot-free methods (zero-shot) do not depend on shots or seed: the grid runs them once per dataset; the
launcher ``scripts/zeroshot/main.sh`` takes SHOTS and SEEDS like the others and reuses one run for every SHOTS.
"""
import os
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, MutableMapping, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RecipeError(Exception):
    """A recipe cannot be used (unknown method, missing config file)."""


@dataclass(frozen=True)
class Recipe:
    trainer: str                                   # --trainer (TRAINER.NAME)
    config: Optional[str]                          # --config-file, relative to the repository root
    settings: Callable[[str, int], Dict[str, object]]
    shot_free: bool = False                        # result independent of shots and seed: one run per dataset

    def tag(self, backbone_tag: str, shots: int) -> str:
        """The run folder's middle part, as the launchers name it (``rn50_16shots``, ``rn50_zeroshot``)."""
        return f"{backbone_tag}_zeroshot" if self.shot_free else f"{backbone_tag}_{shots}shots"

    def config_path(self) -> Optional[str]:
        """The config file to pass (relative path), None when the method runs without one.

        Raises ``RecipeError`` when a required file is missing.
        """
        if self.config is None:
            return None
        if os.path.isfile(os.path.join(REPO_ROOT, self.config)):
            return self.config
        present = sorted(os.listdir(os.path.join(REPO_ROOT, "configs", "trainers")))
        raise RecipeError(f"{self.trainer}: config file {self.config} does not exist (method not available "
                          f"yet?). Trainer configs present: {', '.join(present) or 'none'}")

    def options(self, dataset: str, shots: int) -> List[str]:
        """The recipe's ``KEY VALUE`` overrides for one dataset (config name) and shot count."""
        return [str(x) for kv in self.settings(dataset, shots).items() for x in kv]

    def epochs(self, dataset: str, shots: int) -> Optional[int]:
        value = self.settings(dataset, shots).get("OPTIM.MAX_EPOCH")
        return None if value is None else int(value)


def declared_recipes() -> Dict[str, Recipe]:
    """Recipes that methods declare in their own modules (imports ``trainers``, hence torch: only when needed)."""
    import trainers

    specs = {name: trainers.method_spec(name) for name in trainers.declared_methods()}
    return {name: Recipe(name, spec.recipe_config or None, spec.settings, shot_free=spec.shot_free)
            for name, spec in specs.items() if spec.recipe_config is not None}


class _RecipeTable(MutableMapping):
    """The declared recipes, read from the trainer classes at each look-up (a changed declaration takes effect at
    once); assignment adds or replaces an entry on top of them (tests, callers that try a recipe without writing
    a module)."""

    def __init__(self):
        self._overrides: Dict[str, Recipe] = {}

    def _all(self) -> Dict[str, Recipe]:
        return {**declared_recipes(), **self._overrides}

    def __getitem__(self, method: str) -> Recipe:
        return self._all()[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __setitem__(self, method: str, recipe: Recipe) -> None:
        self._overrides[method] = recipe

    def __delitem__(self, method: str) -> None:
        if method not in self._overrides:
            raise KeyError(f"{method} is declared in its module; only added entries can be removed")
        del self._overrides[method]


RECIPES: Mapping = _RecipeTable()

# The paper's comparison, in table order.
PAPER_METHODS = ("ZeroshotCLIP", "LinearProbeCLIP", "CoOp", "CLIP_Adapter", "TipAdapter", "TipAdapterF", "TaskRes")


def get_recipe(method: str) -> Recipe:
    try:
        return RECIPES[method]
    except KeyError:
        raise RecipeError(f"No recipe for method {method!r}; known: {', '.join(RECIPES)} "
                          f"(declare recipe_config and recipe in its SPEC)") from None
