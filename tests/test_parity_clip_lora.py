"""Parity with the public CLIP-LoRA code (MaxZanella/CLIP-LoRA@358f0d7).

The numbers below were recorded by running the original on CPU in a scratch folder: its ``clip`` package's
``build_model`` on the *parity CLIP* of ``tests/test_parity_taskres.py`` (every weight from
``RandomState(0)``), then ``float()`` as its ``clip.load`` does on a CPU; ``loralib/utils.py`` ``apply_lora``
with ``run_utils.py``'s defaults (encoder both, position all, params q k v, r 2, alpha 1, dropout 0.25);
text "a photo of a {}." with ``_`` -> space as ``lora.py`` ``run_lora``/``evaluate_lora`` build it; logits
``100 * cos`` as there. Only ``.cuda()`` was left out. The parity CLIP has one text block and two image
blocks, so the original's layer list is [text 0, image 0, image 1] (``apply_lora`` adapts the text encoder
first).
"""
import math

import numpy as np
import pytest
import torch

from tests.conftest import make_trainer, train_args
from tests.fixtures.synthetic_datasets import write_dataset
from tests.test_parity_taskres import write_parity_clip

CONFIG = ("--config-file", "configs/trainers/CLIP_LoRA/vit_b16.yaml")

# lora.py run_lora / evaluate_lora on Food101's first three classes, two images from RandomState(1).
ORIGINAL_INIT_LOGITS = [[30.275663, 12.069128, 25.036562], [29.857224, 12.268789, 24.831820]]
# The same, with every LoRA matrix set from RandomState(2) * 0.1 in the original's order (layers as above;
# per layer q, k, v; per projection A then B).
ORIGINAL_FIXED_LORA_LOGITS = [[31.072823, 14.843754, 26.557665], [30.301857, 15.101627, 25.958372]]
# ... then one step of run_lora's loop body (cross-entropy of 100 * cos, labels [0, 2]; AdamW with its weight
# decay 1e-2 and betas (0.9, 0.999), lr 1e-2 to make the step visible; dropout off to make it deterministic).
ORIGINAL_LOGITS_AFTER_ONE_STEP = [[32.616825, 18.331310, 30.255795], [31.662968, 18.437456, 29.456196]]
ORIGINAL_LOSS_BEFORE_THE_STEP = 2.1836321
# loralib/layers.py LoRALayer.__init__: scaling = lora_alpha / sqrt(r) (not alpha / r).
ORIGINAL_SCALING = 0.7071067811865475
# mark_only_lora_as_trainable: trainable parameters of the parity CLIP and of the ViT-B/16 architecture.
ORIGINAL_TRAINABLE_TINY = 2304
ORIGINAL_TRAINABLE_VIT_B16 = 184320
# lora.py run_lora: total_iters = args.n_iters * args.shots (n_iters 500).
ORIGINAL_TOTAL_ITERS = {1: 500, 2: 1000, 4: 2000, 8: 4000, 16: 8000}
# datasets/utils.py build_data_loader (batch 32, drop_last False): batches per epoch for N training images.
ORIGINAL_BATCHES_PER_EPOCH = {16: 1, 39: 2, 83: 3, 1600: 50, 16000: 500}
# CosineAnnealingLR(optimizer, total_iters, eta_min=1e-6), stepped after every iteration: lr after n steps, T = 2000.
ORIGINAL_LR_AFTER = {0: 2e-4, 1: 1.999998772468205e-4, 1000: 1.005e-4, 1999: 1.0001227531794994e-06, 2000: 1e-06}
TOL = 5e-5  # fp32 on both sides; the original merges B A into W at evaluation, we add it to the output


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("food"))
    write_dataset("Food101", root, num_classes=3, per_class=10, image_size=32)
    clip = write_parity_clip(str(tmp_path_factory.mktemp("parity") / "parity-clip.pt"))
    return root, clip


def _trainer(setup, out, opts=()):
    root, clip = setup
    argv = train_args(root, clip, str(out), trainer="CLIP_LoRA", dataset="food101", shots=2, extra=CONFIG)
    return make_trainer(argv + ["TRAINER.CLIP_LORA.ITERS_PER_SHOT", "500", *opts])


def _inputs():
    rs = np.random.RandomState(1)
    return torch.tensor(rs.standard_normal((2, 3, 32, 32)), dtype=torch.float32), torch.tensor([0, 2])


def _eval_logits(trainer, images):
    trainer.set_model_mode("eval")
    with torch.no_grad():
        return trainer.model(images)


def _set_fixed_lora(head):
    rs = np.random.RandomState(2)
    with torch.no_grad():
        for layer in [*head.text, *head.image]:  # the original's order: text blocks, then image blocks
            for proj in ("q", "k", "v"):
                for matrix in (layer[proj].lora_A, layer[proj].lora_B):
                    matrix.copy_(torch.tensor(rs.standard_normal(tuple(matrix.shape)) * 0.1))


def test_init_is_the_frozen_model_and_the_scaling_is_alpha_over_sqrt_rank(setup, tmp_path):
    trainer = _trainer(setup, tmp_path)
    head = trainer.model.head
    images, _ = _inputs()
    lora = head.image[0]["q"]
    assert lora.scaling == pytest.approx(ORIGINAL_SCALING)
    assert torch.all(lora.lora_B == 0) and lora.lora_A.abs().max() <= 1 / math.sqrt(lora.lora_A.shape[1])
    torch.testing.assert_close(_eval_logits(trainer, images), torch.tensor(ORIGINAL_INIT_LOGITS), rtol=0, atol=TOL)


def test_logits_for_fixed_lora_matrices_match_the_original(setup, tmp_path):
    trainer = _trainer(setup, tmp_path)
    _set_fixed_lora(trainer.model.head)
    images, _ = _inputs()
    torch.testing.assert_close(_eval_logits(trainer, images), torch.tensor(ORIGINAL_FIXED_LORA_LOGITS),
                               rtol=0, atol=TOL)


def test_one_training_step_matches_the_original(setup, tmp_path):
    trainer = _trainer(setup, tmp_path, ["OPTIM.LR", "0.01", "TRAINER.CLIP_LORA.DROPOUT", "0.0"])
    _set_fixed_lora(trainer.model.head)
    images, labels = _inputs()
    trainer.set_model_mode("train")
    trainer.batch_idx, trainer.num_batches = 0, 1
    out = trainer.forward_backward({"img": images, "label": labels})  # the trainer's own step (AdamW from the config)
    assert out["loss"] == pytest.approx(ORIGINAL_LOSS_BEFORE_THE_STEP, abs=1e-5)
    torch.testing.assert_close(_eval_logits(trainer, images), torch.tensor(ORIGINAL_LOGITS_AFTER_ONE_STEP),
                               rtol=0, atol=TOL)


def test_trainable_parameter_counts_match_the_original(setup, tmp_path):
    from trainers.lora_layers import add_lora
    from trainers.random_clip import build_random_clip

    trainer = _trainer(setup, tmp_path)
    assert sum(p.numel() for p in trainer.model.head.parameters() if p.requires_grad) == ORIGINAL_TRAINABLE_TINY
    model = build_random_clip("ViT-B/16").requires_grad_(False)
    layers = [add_lora(model.visual.transformer, ("q", "k", "v"), 2, 1.0, 0.25),
              add_lora(model.transformer, ("q", "k", "v"), 2, 1.0, 0.25)]
    assert sum(p.numel() for part in layers for p in part.parameters()) == ORIGINAL_TRAINABLE_VIT_B16


def test_iteration_count_and_epochs(tmp_path_factory, setup, tmp_path):
    """500 x shots iterations; ceil(N / 32) batches per epoch: 13 classes x 3 shots = 39 images make 2 batches
    (the engine's loader, which drops the last partial batch, would make 1); the last epoch is cut."""
    root = str(tmp_path_factory.mktemp("caltech13"))
    write_dataset("Caltech101", root, num_classes=13, per_class=10, image_size=32)
    argv = train_args(root, setup[1], str(tmp_path), trainer="CLIP_LoRA", shots=3, extra=CONFIG)
    trainer = make_trainer(argv + ["TRAINER.CLIP_LORA.ITERS_PER_SHOT", "500", "DATALOADER.TRAIN_X.BATCH_SIZE", "32"])
    assert len(trainer.dm.dataset.train_x) == 39
    assert trainer.steps == ORIGINAL_TOTAL_ITERS[1] * 3
    assert trainer.batches_per_epoch == len(trainer.train_loader_x) == ORIGINAL_BATCHES_PER_EPOCH[39]
    assert trainer.max_epoch == 750  # 1500 steps / 2 batches
    assert trainer.metrics_extra()["iterations"] == 1500


def test_learning_rate_schedule_matches_the_original(setup, tmp_path):
    trainer = _trainer(setup, tmp_path, ["DATASET.NUM_SHOTS", "4"])
    assert trainer.steps == 2000
    optim, sched = trainer._optims["lora"], trainer._scheds["lora"]
    seen = {}
    for step in range(2001):
        if step in ORIGINAL_LR_AFTER:
            seen[step] = optim.param_groups[0]["lr"]
        optim.step()
        sched.step()
    for step, lr in ORIGINAL_LR_AFTER.items():
        assert seen[step] == pytest.approx(lr, rel=1e-9, abs=1e-15), step
