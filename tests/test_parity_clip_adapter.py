"""Parity with the public CLIP-Adapter code (gaopengcuhk/CLIP-Adapter@08d07f8, ``clip_adapter.py``).

``ORIGINAL_LOGITS`` was recorded by running the original ``CustomCLIP.forward`` (its ``Adapter(1024, 4)``,
``ratio = 0.2``, ``TextEncoder`` with the dataset template and ``_`` -> space, after
``clip_model.float()``) on CPU — the only change: ``prompts.to('cuda')`` -> ``'cpu'`` — on the
parity CLIP with a 1024-d embedding (the width the original hard-codes), with the adapter weights
and images drawn below.
"""
import numpy as np
import pytest
import torch

from tests.conftest import make_trainer, train_args
from tests.fixtures.synthetic_datasets import write_dataset
from tests.test_parity_taskres import write_parity_clip

# Food101's first three classes ("apple_pie", "baby_back_ribs", "baklava"), two images.
ORIGINAL_LOGITS = [[6.8691, 6.6748, 6.1964], [6.6565, 6.7052, 6.0169]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("food"))
    write_dataset("Food101", root, num_classes=3, per_class=10, image_size=32)
    clip = write_parity_clip(str(tmp_path_factory.mktemp("parity") / "parity-1024.pt"), embed_dim=1024)
    return root, clip


def test_logits_for_fixed_adapter_weights_match_the_original(setup, tmp_path):
    root, clip = setup
    trainer = make_trainer(train_args(root, clip, str(tmp_path), trainer="CLIP_Adapter", dataset="food101", shots=2,
                                      extra=("--config-file", "configs/trainers/CLIP_Adapter/rn50.yaml")))
    head = trainer.model.head
    assert head.ratio == 0.2
    rs = np.random.RandomState(1)
    with torch.no_grad():
        head.fc[0].weight.copy_(torch.tensor(rs.standard_normal((256, 1024)) * 0.05))
        head.fc[2].weight.copy_(torch.tensor(rs.standard_normal((1024, 256)) * 0.05))
        images = torch.tensor(rs.standard_normal((2, 3, 32, 32)), dtype=torch.float32)
        head.eval()
        logits = trainer.model(images)
    torch.testing.assert_close(logits, torch.tensor(ORIGINAL_LOGITS), rtol=0, atol=2e-3)
