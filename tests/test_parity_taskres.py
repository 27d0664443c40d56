"""Parity with the original TaskRes code: the base classifier built from class names with underscores.

The facts below were recorded by running the original's own function
(geekyutao/TaskRes@5195359, ``trainers/taskres.py``, ``_get_base_text_features``, with its ``clip``
package; only ``.cuda()`` removed and the checkpoint path changed) on the *parity CLIP*: the tiny
open_clip architecture whose every weight is drawn from ``numpy.random.RandomState(0)``, so its
numbers do not depend on the torch or open_clip version. The original runs the text encoder in fp16;
the tolerance is 6e-3, how far fp16 text features move the logits from fp32 ones on this CLIP.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import make_trainer, train_args
from tests.fixtures.synthetic_datasets import write_dataset


def parity_state_dict(seed: int = 0, embed_dim: int = 32) -> dict:
    """The tiny CLIP's OpenAI-format state dict with every tensor drawn from ``RandomState(seed)`` (fp16)."""
    from trainers.random_clip import build_random_clip

    rs = np.random.RandomState(seed)
    state = {}
    for key, value in sorted(build_random_clip("vit", embed_dim=embed_dim).state_dict().items()):
        if not value.is_floating_point():
            state[key] = value
            continue
        shape = tuple(value.shape)
        if key == "logit_scale":
            drawn = np.full(shape, np.log(100.0))
        elif ("ln" in key or key.endswith("norm.weight")) and key.endswith("weight"):
            drawn = 1.0 + 0.1 * rs.standard_normal(shape)
        elif key.endswith("bias"):
            drawn = 0.02 * rs.standard_normal(shape)
        elif key in ("text_projection", "visual.proj"):
            drawn = rs.standard_normal(shape) / np.sqrt(shape[0])
        else:
            drawn = 0.05 * rs.standard_normal(shape)
        state[key] = torch.from_numpy(drawn.astype(np.float32)).half()
    return state


def write_parity_clip(path: str, embed_dim: int = 32) -> str:
    torch.save(parity_state_dict(embed_dim=embed_dim), path)
    return path


@pytest.fixture(scope="module")
def parity_clip(tmp_path_factory) -> str:
    return write_parity_clip(str(tmp_path_factory.mktemp("parity") / "parity-clip.pt"))


@pytest.fixture(scope="module")
def food_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("food"))
    write_dataset("Food101", root, num_classes=3, per_class=10, image_size=32)
    return root


# The original's base_text_features[:, :6] for Food101's first three classes (raw names "apple_pie",
# "baby_back_ribs", "baklava"; template "a photo of {}, a type of food."), on the parity CLIP.
# (Recorded with torch 2.14 on CPU, the original computing in fp16.)
ORIGINAL_BASE = {
    "apple_pie": [-1.83789, -0.27368, 0.28101, -0.17883, 0.73828, 1.59473],
    "baby_back_ribs": [-1.05566, 0.22546, -1.49512, 0.37793, 0.10828, 1.55957],
    "baklava": [-0.15942, 0.16272, -0.81055, 0.7373, -1.82324, 0.76123],
}
# The original's cosine between its base (raw names) and the same base from cleaned names, per class.
ORIGINAL_RAW_VS_CLEAN_COSINE = {"apple_pie": 0.6474, "baby_back_ribs": 0.7572, "baklava": 1.0}
TOL = 6e-3


def _args(root, clip, out, trainer="TaskRes", extra=()):
    return train_args(root, clip, str(out), trainer=trainer, dataset="food101", shots=2, extra=list(extra))


def test_taskres_base_uses_raw_class_names_like_the_original(food_root, parity_clip, tmp_path):
    """geekyutao/TaskRes@5195359 trainers/taskres.py _get_base_text_features: ``template.format(text)`` on the
    dataset's raw class names (no ``_`` -> space)."""
    trainer = make_trainer(_args(food_root, parity_clip, tmp_path / "raw"))
    assert trainer.classnames == list(ORIGINAL_BASE)
    base = trainer.model.head.base_text_features
    expected = torch.tensor(list(ORIGINAL_BASE.values()))
    torch.testing.assert_close(base[:, :6], expected, rtol=TOL, atol=TOL)


def test_cleaned_names_option_differs_where_names_have_underscores(food_root, parity_clip, tmp_path):
    raw = make_trainer(_args(food_root, parity_clip, tmp_path / "raw")).model.head.base_text_features
    clean = make_trainer(_args(food_root, parity_clip, tmp_path / "clean",
                               extra=("TRAINER.TaskRes.RAW_CLASSNAMES", "False"))).model.head.base_text_features
    cosine = F.cosine_similarity(raw, clean, dim=-1)
    torch.testing.assert_close(cosine, torch.tensor(list(ORIGINAL_RAW_VS_CLEAN_COSINE.values())), rtol=0, atol=TOL)


def test_zero_shot_clip_cleans_names_and_taskres_option_matches_it(food_root, parity_clip, tmp_path):
    """CoOp's zero-shot CLIP (KaiyangZhou/CoOp@ff61507 trainers/zsclip.py) replaces ``_`` by spaces; TaskRes at
    initialisation equals it only with ``RAW_CLASSNAMES False``."""
    from tests.conftest import all_logits

    zs, _ = all_logits(make_trainer(_args(food_root, parity_clip, tmp_path / "zs", trainer="ZeroshotCLIP")))
    raw, _ = all_logits(make_trainer(_args(food_root, parity_clip, tmp_path / "raw")))
    clean, _ = all_logits(make_trainer(_args(food_root, parity_clip, tmp_path / "clean",
                                             extra=("TRAINER.TaskRes.RAW_CLASSNAMES", "False"))))
    torch.testing.assert_close(clean, zs, rtol=1e-4, atol=1e-4)
    assert (raw - zs).abs().max() > 0.1


@pytest.mark.slow
def test_raw_classnames_recorded_in_metrics(food_root, parity_clip, tmp_path):
    import json

    import train

    out = tmp_path / "run"
    train.main(_args(food_root, parity_clip, out))
    assert json.loads((out / "metrics.json").read_text())["extra"]["raw_classnames"] is True
