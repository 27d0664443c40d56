"""Every method's recipe, read from its declaration (``trainers.method_spec``): config file and per-dataset settings.

One recipe for every backbone but the image side; ``recipe_argv`` builds every launch: docs/bookkeeping.md.
"""
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping

import trainers
from trainers.backbone import checkpoint_image_size

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The backbones the paper (and its configs) report; a run on another backbone is never "recipe".
PAPER_BACKBONES = ("RN50", "RN101", "ViT-B/32", "ViT-B/16", "RN50x16")
# The paper's comparison, in table order.
PAPER_METHODS = ("ZeroshotCLIP", "LinearProbeCLIP", "CoOp", "CLIP_Adapter", "TipAdapter", "TipAdapterF", "TaskRes")


class RecipeError(Exception):
    """A recipe cannot be used (unknown method, missing config file)."""


@dataclass(frozen=True)
class Recipe:
    trainer: str                                   # --trainer (TRAINER.NAME)
    config: str                                    # --config-file, relative to the repository root
    settings: Callable[[str, int], Mapping[str, object]]
    shot_free: bool = False                        # result independent of shots and seed: one run per dataset

    def tag(self, backbone_tag: str, shots: int) -> str:
        """The run folder's middle part (``rn50_16shots``, ``rn50_zeroshot``)."""
        return f"{backbone_tag}_zeroshot" if self.shot_free else f"{backbone_tag}_{shots}shots"


def declared_recipes() -> Dict[str, Recipe]:
    """The declared recipes, read at each call (a plugin's, or a declaration patched by a test, counts at once)."""
    specs = {name: trainers.method_spec(name) for name in trainers.declared_methods()}
    return {name: Recipe(name, s.recipe_config, s.recipe or s.settings, s.shot_free)
            for name, s in specs.items() if s.recipe_config is not None}


def get_recipe(method: str) -> Recipe:
    recipes = declared_recipes()
    if method not in recipes:
        raise RecipeError(f"No recipe for method {method!r}; known: {', '.join(recipes)} "
                          "(declare recipe_config and recipe in its MethodSpec)")
    return recipes[method]


def input_size(backbone: str) -> int:
    """The image side a backbone was trained at: read from a checkpoint file, else by name (224 by default)."""
    if os.path.isfile(backbone):
        return checkpoint_image_size(backbone)
    return {"RN50x4": 288, "RN50x16": 384, "RN50x64": 448, "ViT-L/14@336px": 336}.get(backbone, 224)


def recipe_argv(method: str, dataset: str, shots: int, backbone: str) -> List[str]:
    """``train.py`` arguments of the recipe run (without root, seed, output and cache folders); ``dataset`` is a
    config name (``caltech101``)."""
    recipe = get_recipe(method)
    if not os.path.isfile(os.path.join(REPO_ROOT, recipe.config)):  # checked at use, not at import
        present = sorted(os.listdir(os.path.join(REPO_ROOT, "configs", "trainers")))
        raise RecipeError(f"{recipe.trainer}: config file {recipe.config} does not exist. Trainer configs present: "
                          f"{', '.join(present) or 'none'}")
    size = input_size(backbone)
    options = [str(x) for kv in dict(recipe.settings(dataset, shots)).items() for x in kv]  # KEY VALUE overrides
    return ["--trainer", recipe.trainer, "--dataset-config-file", f"configs/datasets/{dataset}.yaml",
            "--backbone", backbone, "--config-file", recipe.config,
            *options, "DATASET.NUM_SHOTS", str(shots), "INPUT.SIZE", f"({size}, {size})"]
