"""Every method's paper recipe, in one table: config file and per-dataset/per-shot settings.

``RECIPES[method].options(dataset, shots)`` gives the ``KEY VALUE`` overrides a grid cell passes to
``train.py`` after ``--config-file``. The TaskRes entry is the same recipe as
``scripts/taskres/main.sh``; the baselines follow the published recipes (see the paper-facts
sheet): only what varies by dataset or shot count, or what a config file cannot say, is here.
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


def _taskres(dataset: str, shots: int) -> Dict[str, object]:
    # Paper, Sec. 4.1: lr 2e-3 (ImageNet 2e-4), alpha 0.5 (OxfordFlowers 1.0), 100 epochs up to 4 shots, else 200.
    return {
        "OPTIM.LR": 2e-4 if dataset == "imagenet" else 2e-3,
        "OPTIM.MAX_EPOCH": 100 if shots <= 4 else 200,
        "TRAINER.TaskRes.RESIDUAL_SCALE": 1.0 if dataset == "oxford_flowers" else 0.5,
    }


def _coop_epochs(dataset: str, shots: int) -> int:
    # CoOp: 50 epochs for 1 shot and for ImageNet, 100 for 2/4 shots, 200 for 8/16.
    if dataset == "imagenet" or shots == 1:
        return 50
    return 100 if shots <= 4 else 200


def _coop(dataset: str, shots: int) -> Dict[str, object]:
    return {"OPTIM.LR": 0.002, "OPTIM.MAX_EPOCH": _coop_epochs(dataset, shots)}


def _clip_adapter(dataset: str, shots: int) -> Dict[str, object]:
    # The public trainer (gaopengcuhk/CLIP-Adapter@08d07f8, clip_adapter.py) hard-codes the residual ratio
    # 0.2 and runs under CoOp's Dassl config (SGD lr 0.002, batch 32, cosine, 1 warm-up epoch; its README:
    # "follow CoOp's command"); the Tip-Adapter paper's efficiency table trains it for 200 epochs (16-shot
    # ImageNet). 200 epochs for every dataset and shot count; the ratio is in the config. The CLIP-Adapter
    # paper tunes the ratio per dataset; those values are not in its public code and are not used here.
    return {"OPTIM.LR": 0.002, "OPTIM.MAX_EPOCH": 200, "TRAINER.CLIP_ADAPTER.RATIO": 0.2}


def _tip_adapter_f(dataset: str, shots: int) -> Dict[str, object]:
    # gaopengcuhk/Tip-Adapter@d0e2d6f configs/*.yaml: lr 1e-3, 20 epochs (EuroSAT 100). The per-dataset
    # search range and initial alpha/beta are applied by the trainer (trainers/tip_adapter.py, PUBLIC_CONFIGS).
    return {"OPTIM.LR": 1e-3, "OPTIM.MAX_EPOCH": 100 if dataset == "eurosat" else 20}


def _nothing(dataset: str, shots: int) -> Dict[str, object]:
    return {}


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


def _cfg(trainer: str) -> str:
    return f"configs/trainers/{trainer}/rn50.yaml"


# The built-in table. Keys are the names users pass to --methods (trainer names). A method declared in its
# own module (``RECIPE_CONFIG`` and ``recipe`` on its trainer class, see trainers/__init__.py) joins it there.
_BUILTIN: Dict[str, Recipe] = {
    "TaskRes": Recipe("TaskRes", _cfg("TaskRes"), _taskres),
    # Zero-shot CLIP trains nothing: one run per dataset (first seed, 1-shot data reading), in the folder
    # and with the config scripts/zeroshot/main.sh uses.
    "ZeroshotCLIP": Recipe("ZeroshotCLIP", _cfg("TaskRes"), _nothing, shot_free=True),
    "ZeroshotCLIP2": Recipe("ZeroshotCLIP2", _cfg("TaskRes"), _nothing, shot_free=True),
    "LinearProbeCLIP": Recipe("LinearProbeCLIP", _cfg("LinearProbeCLIP"), _nothing),
    "CoOp": Recipe("CoOp", _cfg("CoOp"), _coop),
    "CLIP_Adapter": Recipe("CLIP_Adapter", _cfg("CLIP_Adapter"), _clip_adapter),
    "TipAdapter": Recipe("TipAdapter", _cfg("TipAdapter"), _nothing),
    "TipAdapterF": Recipe("TipAdapterF", _cfg("TipAdapterF"), _tip_adapter_f),
}



def declared_recipes() -> Dict[str, Recipe]:
    """Recipes that methods declare in their own modules (imports ``trainers``, hence torch: only when needed)."""
    import trainers

    return {name: Recipe(name, cls.RECIPE_CONFIG or None, cls.recipe, shot_free=bool(getattr(cls, "SHOT_FREE", False)))
            for name, cls in trainers.declared_methods().items()
            if name not in _BUILTIN and getattr(cls, "RECIPE_CONFIG", None) is not None}


class _RecipeTable(MutableMapping):
    """``_BUILTIN`` plus the declared recipes, which are looked up only when a name is not built in (so the
    launchers' recipe look-up of a paper method does not import torch). Assignment edits the built-in part."""

    def __init__(self, builtin: Dict[str, Recipe]):
        self._builtin = builtin
        self._declared: Optional[Dict[str, Recipe]] = None

    def _all(self) -> Dict[str, Recipe]:
        if self._declared is None:
            self._declared = declared_recipes()
        return {**self._builtin, **self._declared}

    def __getitem__(self, method: str) -> Recipe:
        if method in self._builtin:
            return self._builtin[method]
        return self._all()[method]

    def __contains__(self, method) -> bool:
        return method in self._builtin or method in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __setitem__(self, method: str, recipe: Recipe) -> None:
        self._builtin[method] = recipe

    def __delitem__(self, method: str) -> None:
        del self._builtin[method]


RECIPES: Mapping = _RecipeTable(_BUILTIN)

# The paper's comparison, in table order.
PAPER_METHODS = ("ZeroshotCLIP", "LinearProbeCLIP", "CoOp", "CLIP_Adapter", "TipAdapter", "TipAdapterF", "TaskRes")


def get_recipe(method: str) -> Recipe:
    try:
        return RECIPES[method]
    except KeyError:
        raise RecipeError(f"No recipe for method {method!r}; known: {', '.join(RECIPES)} "
                          f"(declare RECIPE_CONFIG and recipe() on its trainer class)") from None
