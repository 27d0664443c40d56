"""Parity with the public Tip-Adapter code (gaopengcuhk/Tip-Adapter@d0e2d6f): its search, grids and configs.

``ORIGINAL_SEARCH`` was recorded by running the original ``utils.py:search_hp`` on CPU on the fixed
problem below (the only change: its ``cls_acc`` rewritten with the same arithmetic, because
``float()`` of a one-element array fails on numpy 2).
"""
import numpy as np
import pytest
import torch

from tests.conftest import make_trainer, train_args
from trainers.tip_adapter import PUBLIC_CONFIGS, TipAdapterHead, search_grid

# configs/<dataset>.yaml search_scale -> (beta, alpha, best val accuracy) chosen by the original search_hp
ORIGINAL_SEARCH = {
    (12, 5): (0.9924999999999999, 4.755, 61.67),    # configs/caltech101.yaml
    (7, 3): (0.5485, 2.855, 60.00),                 # configs/imagenet.yaml
    (50, 50): (1.098, 47.505, 85.00),               # configs/oxford_flowers.yaml
}


def fixed_problem():
    """5 classes, 4 keys each, 60 val features in 16 dims; a weak zero-shot classifier (all L2-normalised)."""
    rs = np.random.RandomState(0)
    classes, dim, shots, per_class_val = 5, 16, 4, 12
    means = rs.standard_normal((classes, dim))
    text = means + 1.5 * rs.standard_normal((classes, dim))
    keys = np.repeat(means, shots, 0) + 0.8 * rs.standard_normal((classes * shots, dim))
    labels = np.repeat(np.arange(classes), shots)
    val_y = np.repeat(np.arange(classes), per_class_val)
    val = means[val_y] + 1.2 * rs.standard_normal((len(val_y), dim))

    def unit(a):
        return torch.tensor(a / np.linalg.norm(a, axis=-1, keepdims=True), dtype=torch.float32)

    return unit(text), unit(keys), torch.tensor(labels), unit(val), torch.tensor(val_y)


@pytest.mark.parametrize("scale", sorted(ORIGINAL_SEARCH))
def test_search_chooses_the_originals_alpha_beta(scale):
    """utils.py:search_hp: beta-major loop, first strict maximum, grid ``i * (max - 0.1) / steps + 0.1``."""
    text, keys, labels, val, val_y = fixed_problem()
    head = TipAdapterHead(text, keys, labels, alpha=1.0, beta=1.0, logit_scale=100.0)
    alpha, beta, acc = head.search(val, val_y, search_grid(scale[0], 200), search_grid(scale[1], 20))
    want_beta, want_alpha, want_acc = ORIGINAL_SEARCH[scale]
    assert beta == pytest.approx(want_beta, abs=1e-9) and alpha == pytest.approx(want_alpha, abs=1e-9)
    assert acc == pytest.approx(want_acc, abs=0.005)


def test_grid_is_the_originals():
    grid = search_grid(12.0, 200)
    assert len(grid) == 200 and grid[0] == pytest.approx(0.1) and grid[-1] == pytest.approx(0.1 + 199 * 11.9 / 200)
    assert max(grid) < 12.0  # the upper end is never reached, as in the public loop


def test_public_configs_table():
    """configs/*.yaml: search_scale [beta max, alpha max] and init_beta / init_alpha per dataset."""
    assert PUBLIC_CONFIGS["Caltech101"] == ((12, 5), (1, 3))
    assert PUBLIC_CONFIGS["DescribableTextures"] == ((13, 13), (1, 2))
    assert PUBLIC_CONFIGS["EuroSAT"] == ((12, 10), (1, 2))
    assert PUBLIC_CONFIGS["FGVCAircraft"] == ((30, 30), (1, 5))
    assert PUBLIC_CONFIGS["Food101"] == ((10, 10), (1, 1.17))
    assert PUBLIC_CONFIGS["OxfordFlowers"] == ((50, 50), (1, 10))
    assert PUBLIC_CONFIGS["StanfordCars"] == ((20, 10), (1, 3))
    assert PUBLIC_CONFIGS["SUN397"] == ((12, 10), (1, 1.17))
    for name in ("ImageNet", "OxfordPets"):
        assert PUBLIC_CONFIGS[name] == ((7, 3), (1, 1.17))
    assert PUBLIC_CONFIGS["UCF101"] == ((7, 3), (1, 3))


def _trainer(root, clip, out, cache_dir, trainer="TipAdapter", dataset="caltech101", opts=()):
    node = "TIP_ADAPTER" if trainer == "TipAdapter" else "TIP_ADAPTER_F"
    return make_trainer(train_args(root, clip, str(out), trainer=trainer, dataset=dataset, shots=2, extra=(
        "--config-file", f"configs/trainers/{trainer}/rn50.yaml", "--cache-dir", cache_dir,
        f"TRAINER.{node}.AUGMENT_EPOCH", "2", *opts)))


def test_dataset_public_values_by_default_and_overrides(data_root, tiny_clip, tmp_path):
    cache = str(tmp_path / "cache")
    cal = _trainer(data_root, tiny_clip, tmp_path / "c", cache).hyperparameters()
    assert cal == {"search_scale": [12.0, 5.0], "search_step": [200, 20], "init_alpha": 3.0, "init_beta": 1.0}
    imn = _trainer(data_root, tiny_clip, tmp_path / "i", cache, dataset="imagenet").hyperparameters()
    assert imn["search_scale"] == [7.0, 3.0] and imn["init_alpha"] == 1.17
    own = _trainer(data_root, tiny_clip, tmp_path / "o", cache, opts=(
        "TRAINER.TIP_ADAPTER.SEARCH_SCALE", "[5.0, 2.0]", "TRAINER.TIP_ADAPTER.INIT_ALPHA", "0.5")).hyperparameters()
    assert own["search_scale"] == [5.0, 2.0] and own["init_alpha"] == 0.5 and own["init_beta"] == 1.0


def test_tip_f_trains_on_views_independent_of_the_keys(data_root, tiny_clip, tmp_path):
    """main.py: the keys come from ``train_loader_cache`` passes, Tip-Adapter-F trains on fresh crops from
    ``train_loader_F``; here no training view is one of the keys' views."""
    trainer = _trainer(data_root, tiny_clip, tmp_path / "f", str(tmp_path / "cache"), trainer="TipAdapterF",
                       opts=("FEATURE_CACHE.NUM_VIEWS", "2"))
    assert trainer.head.cache_keys.shape[0] == 0  # nothing encoded before training (eval-only encodes none)
    trainer.use_train_features()
    key_views = trainer.feature_source.get("train", trainer.dm.dataset.train_x, trainer.cache_transform(), 2,
                                        trainer.key_seed())["features"]
    train_views = trainer.train_loader_x.features
    assert trainer.head.cache_keys.shape[0] == key_views.shape[1] == train_views.shape[1]
    for v in range(train_views.shape[0]):
        for k in range(key_views.shape[0]):
            assert not torch.equal(train_views[v].cpu(), key_views[k].float())
