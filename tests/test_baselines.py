"""The baselines beside TaskRes: linear probe, CoOp, CLIP-Adapter, Tip-Adapter and Tip-Adapter-F.

Every method trains and evaluates through ``train.main`` on the tiny random CLIP and learnable
synthetic data (4 classes: chance is 25%), and ``--eval-only`` reproduces the saved accuracy. The
learning rates are larger than the published ones: random tiny-CLIP features need them.
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F

import train
from bookkeeping.config import build_parser, setup_cfg
from bookkeeping.folders import deployed_epoch, selected_models
from engine import build_trainer, load_checkpoint, set_random_seed
from tests.conftest import train_args
from trainers.tip_adapter import search_grid

CHANCE = 25.0

# Per trainer: its config file and test-sized overrides (views, learning rate, epochs).
SETUPS = {
    "LinearProbeCLIP": ("configs/trainers/LinearProbeCLIP/rn50.yaml", ("TRAINER.LINEAR_PROBE.REFINE_STEPS", "3"), 1),
    "TipAdapter": ("configs/trainers/TipAdapter/rn50.yaml", ("TRAINER.TIP_ADAPTER.AUGMENT_EPOCH", "2"), 1),
    "TipAdapterF": ("configs/trainers/TipAdapterF/rn50.yaml",
                    ("TRAINER.TIP_ADAPTER_F.AUGMENT_EPOCH", "2", "OPTIM.LR", "0.01"), 5),
    "CoOp": ("configs/trainers/CoOp/rn50.yaml", ("OPTIM.NAME", "adam", "OPTIM.LR", "0.002"), 20),
    "CLIP_Adapter": ("configs/trainers/CLIP_Adapter/rn50.yaml", ("OPTIM.NAME", "adam", "OPTIM.LR", "0.05"), 20),
}
CHECKPOINT_FOLDERS = {"LinearProbeCLIP": "linear_probe", "TipAdapter": "tip_adapter", "TipAdapterF": "tip_adapter",
                      "CoOp": "prompt_learner", "CLIP_Adapter": "clip_adapter"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("feature_cache"))


def args_for(trainer, root, clip, out, cache_dir, flags=(), opts=(), seed=1):
    """``train.py`` arguments: the trainer's config and test overrides, then ``flags``, then ``opts`` (KEY VALUE)."""
    config, overrides, epochs = SETUPS[trainer]
    return train_args(root, clip, out, trainer=trainer, seed=seed, epochs=epochs,
                      extra=("--config-file", config, "--cache-dir", cache_dir, *flags, *overrides, *opts))


@pytest.fixture(scope="module")
def runs(data_root, tiny_clip, cache_dir, tmp_path_factory):
    """``runs(trainer)`` -> (output dir, test results) on the shared data; each run happens once per module."""
    done = {}

    def get(trainer):
        if trainer not in done:
            out = str(tmp_path_factory.mktemp(trainer))
            done[trainer] = out, train.main(args_for(trainer, data_root, tiny_clip, out, cache_dir))
        return done[trainer]

    return get


def build(trainer, root, clip, out, cache_dir, flags=(), opts=(), seed=1):
    """The trainer ``train.main`` would build (same config and seeding), without running it."""
    cfg = setup_cfg(build_parser().parse_args(args_for(trainer, root, clip, out, cache_dir,
                                                                   flags=flags, opts=opts, seed=seed)))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def checkpoint(out, trainer, name):
    return load_checkpoint(os.path.join(out, CHECKPOINT_FOLDERS[trainer], name))


# ------------------------------------------------------------------------------------------------------
# Every trainer: end to end above chance, and --eval-only reproduces the accuracy
# ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("trainer", sorted(SETUPS))
def test_trains_above_chance_and_eval_only_reproduces(trainer, runs, data_root, tiny_clip, cache_dir, tmp_path):
    out, results = runs(trainer)
    assert results["split"] == "test"
    assert results["accuracy"] > CHANCE + 20, results
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["method"] == trainer
    # No --load-epoch: the model the run reported (its last epoch; Tip-Adapter-F's val-selected model-best).
    flags = ("--eval-only", "--model-dir", out)
    again = train.main(args_for(trainer, data_root, tiny_clip, str(tmp_path / "eval"), cache_dir, flags=flags))
    assert again["accuracy"] == pytest.approx(results["accuracy"])


@pytest.mark.slow
def test_an_explicit_epoch_of_a_val_selected_run_loads_that_epoch_and_warns(runs, data_root, tiny_clip, cache_dir,
                                                                            tmp_path):
    out, _ = runs("TipAdapterF")
    assert deployed_epoch(out) is None and selected_models(out)  # it deployed model-best.pth.tar
    flags = ("--eval-only", "--model-dir", out, "--load-epoch", "5")
    train.main(args_for("TipAdapterF", data_root, tiny_clip, str(tmp_path / "eval"), cache_dir, flags=flags))
    log = (tmp_path / "eval" / "log.txt").read_text()
    assert "deployed its val-selected model (model-best.pth.tar); --load-epoch 5 evaluates epoch 5's" in log
    assert os.path.join("tip_adapter", "model.pth.tar-5") in log  # "Loaded model weights from ..."


# ------------------------------------------------------------------------------------------------------
# Model selection never reads the test split (every method, track and ImageNet: tests/test_selection_tracks.py)
# ------------------------------------------------------------------------------------------------------
def _selection(trainer, out):
    if trainer == "LinearProbeCLIP":
        return {"C": float(checkpoint(out, trainer, "model.pth.tar-1")["state_dict"]["C"])}
    name = "model-best.pth.tar" if trainer == "TipAdapterF" else "model.pth.tar-1"
    ckpt = checkpoint(out, trainer, name)
    return {"alpha": float(ckpt["state_dict"]["alpha"]), "beta": float(ckpt["state_dict"]["beta"]),
            "epoch": ckpt["epoch"], "keys": ckpt["state_dict"]["cache_keys"]}


@pytest.mark.slow
def test_tip_adapter_deploys_the_best_pair_of_its_val_grid(runs, data_root, tiny_clip, cache_dir, tmp_path):
    """The deployed (alpha, beta) is the first pair of the public grid (beta-major, as the public loop) with
    the best val accuracy, recomputed here pair by pair through the head's forward on the saved cache. Some
    pairs of the grid do worse, so the choice is real (and a test of what selection reads compares real
    choices)."""
    out, _ = runs("TipAdapter")
    chosen = _selection("TipAdapter", out)
    tip = build("TipAdapter", data_root, tiny_clip, str(tmp_path), cache_dir)
    tip.load_model(out, epoch=1)
    head, (features, labels), hp = tip.head, tip.validation_features(), tip.hyperparameters()

    def val_accuracy(alpha, beta):
        head.set_hyperparameters(alpha, beta)
        with torch.no_grad():
            return (head(features).argmax(dim=-1) == labels).float().mean().item()

    grid = [(float(a), float(b)) for b in search_grid(hp["search_scale"][0], hp["search_step"][0])
            for a in search_grid(hp["search_scale"][1], hp["search_step"][1])]
    accuracies = [val_accuracy(a, b) for a, b in grid]
    best = max(accuracies)
    assert (chosen["alpha"], chosen["beta"]) == pytest.approx(grid[accuracies.index(best)], rel=1e-6)
    assert min(accuracies) < best


def test_imagenet_selects_on_held_out_train_images(data_root, tiny_clip, cache_dir, tmp_path):
    """ImageNet's val is its test set: selection runs on held-out train images instead."""
    from trainers.linear_probe import validation_items

    trainer = build("LinearProbeCLIP", data_root, tiny_clip, str(tmp_path), cache_dir,
                    flags=("--dataset-config-file", "configs/datasets/imagenet.yaml"))
    ds = trainer.dm.dataset
    assert {d.impath for d in ds.val} == {d.impath for d in ds.test}  # the reason for the held-out set
    held_out = validation_items(trainer, paper="fewshot_val")  # what the linear probe asks for (lpclip's min(K, 4))
    paths = {d.impath for d in held_out}
    assert len(held_out) == 4 * 4 and trainer.selection["source"] == "heldout_val"
    assert not paths & {d.impath for d in ds.test}
    assert not paths & {d.impath for d in ds.train_x}
    assert [d.impath for d in validation_items(trainer, paper="fewshot_val")] == [d.impath for d in held_out]  # seeded


# ------------------------------------------------------------------------------------------------------
# Tip-Adapter
# ------------------------------------------------------------------------------------------------------
def test_tip_adapter_alpha_zero_is_zero_shot(data_root, tiny_clip, cache_dir, tmp_path):
    tip = build("TipAdapter", data_root, tiny_clip, str(tmp_path / "tip"), cache_dir,
                opts=("TRAINER.TIP_ADAPTER.SEARCH_HP", "False", "TRAINER.TIP_ADAPTER.INIT_ALPHA", "0.0"))
    cfg = setup_cfg(build_parser().parse_args(train_args(
        data_root, tiny_clip, str(tmp_path / "zs"), trainer="ZeroshotCLIP", extra=("--cache-dir", cache_dir))))
    zs = build_trainer(cfg)
    tip.build_cache()
    features = tip.test_loader.features[0].float()
    with torch.no_grad():
        torch.testing.assert_close(tip.model.head(features), zs.model.head(features), rtol=0, atol=1e-5)
        assert not torch.equal(tip.model.head.cache_logits(tip.model.head.affinity(features), 5.5),
                               torch.zeros(features.shape[0], 4))


@pytest.mark.slow
def test_tip_adapter_f_trains_only_the_keys(runs):
    out, _ = runs("TipAdapterF")
    initial = checkpoint(out, "TipAdapterF", "model.pth.tar-5")["state_dict"]  # last epoch, initial alpha/beta
    deployed = checkpoint(out, "TipAdapterF", "model-best.pth.tar")["state_dict"]
    assert set(deployed) == {"cache_keys", "cache_labels", "alpha", "beta"}
    assert torch.equal(initial["cache_labels"], deployed["cache_labels"])
    # Caltech101's public initial values (gaopengcuhk/Tip-Adapter@d0e2d6f configs/caltech101.yaml)
    assert float(initial["alpha"]) == 3.0 and float(initial["beta"]) == 1.0
    keys = initial["cache_keys"]
    assert not torch.allclose(keys.norm(dim=-1), torch.ones(keys.shape[0]))  # moved off the unit sphere: trained


# ------------------------------------------------------------------------------------------------------
# CoOp
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("csc,position", [(False, "end"), (True, "middle"), (False, "front")])
def test_coop_only_context_gets_gradients(csc, position, data_root, tiny_clip, cache_dir, tmp_path):
    trainer = build("CoOp", data_root, tiny_clip, str(tmp_path), cache_dir,
                    opts=("TRAINER.COOP.CSC", str(csc), "TRAINER.COOP.CLASS_TOKEN_POSITION", position,
                           "TRAINER.COOP.N_CTX", "4"))
    head = trainer.model.head
    assert head.ctx.shape == ((4, 4, 64) if csc else (4, 64))
    assert set(head.state_dict()) == {"ctx"}
    head.train()
    batch = next(iter(trainer.train_loader_x))
    F.cross_entropy(trainer.model(batch["img"]), batch["label"]).backward()
    with_grad = [n for n, p in head.named_parameters() if p.grad is not None]
    assert with_grad == ["ctx"] and head.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in trainer.clip.model.parameters())


def test_coop_photo_init_is_zero_shot(data_root, tiny_clip, cache_dir, tmp_path):
    from trainers.text_classifier import build_zero_shot_classifier

    trainer = build("CoOp", data_root, tiny_clip, str(tmp_path), cache_dir,
                    opts=("TRAINER.COOP.CTX_INIT", "a photo of a"))
    head = trainer.model.head
    assert head.ctx.shape[0] == 4  # four tokens
    features = trainer.test_loader.features[0].float()
    text = build_zero_shot_classifier(trainer.clip, trainer.classnames, ("a photo of a {}.",))
    expected = trainer.clip.logit_scale * F.normalize(features, dim=-1) @ F.normalize(text, dim=-1).t()
    with torch.no_grad():
        head.train()
        torch.testing.assert_close(head(features), expected, rtol=0, atol=1e-4)
        head.eval()  # the cached evaluation path gives the same numbers
        torch.testing.assert_close(head(features), expected, rtol=0, atol=1e-4)


def test_coop_loads_coop_checkpoint_layout(data_root, tiny_clip, cache_dir, tmp_path):
    """CoOp's files also hold token_prefix/token_suffix; they are dropped, ``ctx`` is loaded."""
    from engine import save_checkpoint

    trainer = build("CoOp", data_root, tiny_clip, str(tmp_path / "run"), cache_dir)
    ctx = torch.randn_like(trainer.model.head.ctx).half()
    state = {"ctx": ctx, "token_prefix": torch.zeros(4, 1, 64), "token_suffix": torch.zeros(4, 60, 64)}
    save_checkpoint({"state_dict": state, "epoch": 50}, str(tmp_path / "coop" / "prompt_learner"))
    trainer.load_model(str(tmp_path / "coop"), epoch=50)
    assert torch.equal(trainer.model.head.ctx.detach(), ctx.float())


# ------------------------------------------------------------------------------------------------------
# CLIP-Adapter
# ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_clip_adapter_backbones_and_only_adapter_changes(kind, data_root, tiny_clip, tiny_clip_rn, cache_dir,
                                                         tmp_path):
    clip, dim = (tiny_clip, 32) if kind == "vit" else (tiny_clip_rn, 48)
    trainer = build("CLIP_Adapter", data_root, clip, str(tmp_path), cache_dir, opts=("OPTIM.MAX_EPOCH", "3"))
    head = trainer.model.head
    assert head.fc[0].weight.shape == (dim // 4, dim) and head.fc[2].weight.shape == (dim, dim // 4)
    before = {k: v.clone() for k, v in head.state_dict(keep_vars=False).items()}
    text_before = head.text_features.clone()
    backbone_before = {k: v.clone() for k, v in trainer.clip.model.state_dict().items()}
    trainer.train()
    after = head.state_dict()
    assert set(after) == {"fc.0.weight", "fc.2.weight"}
    assert all(not torch.equal(before[k], after[k]) for k in after)
    assert torch.equal(head.text_features, text_before)
    assert all(torch.equal(v, backbone_before[k]) for k, v in trainer.clip.model.state_dict().items())
