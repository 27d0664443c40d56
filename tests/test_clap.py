"""ZS-LP and CLAP: parity with the public code's core functions, the seam's declarations, end to end.

Parity facts were measured by running jusiro/CLAP@dbdf4095b3d824546474c725539b9f4efff3ca0e
``trainers/adapters.py`` ``AdapterMethod.init_lagrangian_multipliers`` and ``zero_shot_constraint``
(CONSTRAINT ``l2``) and ``CustomCLIP.forward_lp`` (ZS-LP's logits, logit_scale log(100)) on CPU
(torch 2.14.1 and 2.1.2 agree) with the fixed inputs below.
"""
import json
import os

import pytest
import torch

import train
from tests.conftest import train_args

ORIGINAL_MULTIPLIERS = [0.326989, 0.334003, 0.413994]
ORIGINAL_PENALTY = 0.00653929


def fixed_inputs():
    c, n = 3, 8
    logits = (torch.arange(n * c, dtype=torch.float32).reshape(n, c) * 0.37).sin() * 4
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
    base = (torch.arange(c * 4, dtype=torch.float32).reshape(c, 4) * 0.5).cos()
    protos = base + 0.1 * (torch.arange(c * 4, dtype=torch.float32).reshape(c, 4) * 0.9).sin()
    return logits, labels, base, protos


def test_class_multipliers_and_penalty_match_the_original():
    from trainers.clap import class_multipliers, constraint_penalty

    logits, labels, base, protos = fixed_inputs()
    mult = class_multipliers(logits, labels, 3)
    assert torch.allclose(mult, torch.tensor(ORIGINAL_MULTIPLIERS), atol=1e-6)
    assert abs(constraint_penalty(protos, base, mult).item() - ORIGINAL_PENALTY) < 1e-7


ORIGINAL_LP_LOGITS = [[55.2119, -96.3826, 50.3968], [-25.4988, 84.092, -75.7158]]


def test_zslp_logits_match_the_original_forward_lp():
    from trainers.probe import PrototypeProbe

    protos = (torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5).cos() * 3
    feats = (torch.arange(8, dtype=torch.float32).reshape(2, 4) * 0.7).sin() * 5
    head = PrototypeProbe(protos, 100.0)
    assert torch.allclose(head(feats), torch.tensor(ORIGINAL_LP_LOGITS), atol=1e-3)
    assert torch.equal(head.prototypes.detach(), protos)  # initialised at the zero-shot prototypes, unnormalised


def test_templates_follow_the_original_policy():
    from datasets import IMAGENET_TEMPLATES_SELECT, dataset_templates
    from trainers.probe import PrototypeProbeTrainer
    from trainers.templates import templates_for

    def original_templates(d):
        return templates_for(d, **PrototypeProbeTrainer.template_policy)

    # adapters.py _get_base_text_features: ImageNet -> the 7 select templates + its own; others -> their own.
    assert dataset_templates("ImageNet") == ("a photo of a {}.",)
    assert original_templates("ImageNet") == tuple(IMAGENET_TEMPLATES_SELECT) + ("a photo of a {}.",)
    assert original_templates("DescribableTextures") == dataset_templates("DescribableTextures")
    assert original_templates("ImageNetV2") == dataset_templates("ImageNetV2")  # "ImageNet" only, as the original


def test_methods_declare_label_and_recipe_in_their_modules():
    import trainers
    from bookkeeping.recipes import recipe_argv

    assert trainers.method_spec("ZSLP").label == "ZS-LP" and trainers.method_spec("CLAP").label == "CLAP"
    assert trainers.method_spec("TaskRes").table_order == 70 and trainers.method_spec("ZSLP").table_order is None
    argv = recipe_argv("CLAP", "imagenet", 1, "ViT-B/16")
    assert argv[argv.index("--config-file") + 1] == "configs/trainers/CLAP/rn50.yaml"
    assert argv[argv.index("OPTIM.LR") + 1] == "0.1" and argv[argv.index("OPTIM.MAX_EPOCH") + 1] == "300"


def _run(trainer, root, clip, out, cache):
    argv = train_args(root, clip, out, trainer=trainer, epochs=5,
                      extra=("--config-file", "configs/trainers/CLAP/rn50.yaml", "--cache-dir", cache))
    result = train.main(argv)
    state = torch.load(os.path.join(out, "prototypes", "model.pth.tar-5"), map_location="cpu", weights_only=False)
    with open(os.path.join(out, "metrics.json")) as f:
        return result, state["state_dict"]["prototypes"], json.load(f)


@pytest.mark.slow
def test_zslp_and_clap_train_end_to_end_and_clap_stays_closer_to_zero_shot(data_root, tiny_clip, tmp_path):
    from tests.conftest import make_trainer

    cache = str(tmp_path / "cache")
    _, zslp, m_zslp = _run("ZSLP", data_root, tiny_clip, str(tmp_path / "zslp"), cache)
    _, clap, m_clap = _run("CLAP", data_root, tiny_clip, str(tmp_path / "clap"), cache)
    assert m_zslp["method"] == "ZSLP" and m_clap["method"] == "CLAP" and m_clap["epochs"] == 5
    assert 0 < m_clap["extra"]["class_multipliers_mean"] <= 1
    base = make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "b"), trainer="CLAP")).model.head.base
    d_zslp = (zslp - base).pow(2).sum(-1).mean().item()
    d_clap = (clap - base).pow(2).sum(-1).mean().item()
    assert d_zslp > 0 and d_clap < d_zslp  # the constraint pulls towards the zero-shot prototypes


def test_the_published_pool_of_twenty_views_is_the_default_and_counted_by_the_grid(data_root, tiny_clip, tmp_path):
    from scripts.reproduce.cost import run_needs
    from tests.conftest import make_trainer

    argv = train_args(data_root, tiny_clip, str(tmp_path / "z"), trainer="ZSLP", epochs=300,
                      extra=("--config-file", "configs/trainers/CLAP/rn50.yaml"))
    trainer = make_trainer(argv + ["FEATURE_CACHE.NUM_VIEWS", "0"])
    assert trainer.train_views() == 20  # not one per epoch (300): the original's 20 augmented views
    needs, original = run_needs(trainer.cfg)
    train_need = [n for n in needs if n[0][0] == "train"]
    assert [views for _, _, views in train_need] == [20] and original >= 20 * train_need[0][1]
    assert make_trainer(argv).train_views() == 2  # an explicit NUM_VIEWS still wins
