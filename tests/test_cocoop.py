"""CoCoOp end to end: train.py and the generic launcher, eval-only, base-to-novel, the batched text forward.

Parity with the public code is in ``tests/test_parity_cocoop.py``.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import train
from engine import CheckpointError, load_checkpoint, save_checkpoint
from tests.conftest import all_logits, make_trainer, train_args
from trainers.backbone import TextTower

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"


def _args(root, clip, out, cache, trainer="CoCoOp", config=CONFIG, epochs=3, flags=(), opts=()):
    argv = train_args(root, clip, str(out), trainer=trainer, epochs=epochs,
                      extra=("--config-file", config, "--cache-dir", str(cache), *flags))
    return argv + ["DATALOADER.TRAIN_X.BATCH_SIZE", "1", "OPTIM.LR", "0.02", *opts]


def _state(out, epoch):
    return load_checkpoint(os.path.join(str(out), "prompt_learner", f"model.pth.tar-{epoch}"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cocoop_cache")


@pytest.mark.slow
def test_trains_end_to_end_and_eval_only_reproduces(data_root, tiny_clip, cache, tmp_path):
    init = make_trainer(_args(data_root, tiny_clip, tmp_path / "init", cache)).model.head.state_dict()
    result = train.main(_args(data_root, tiny_clip, tmp_path / "run", cache))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["method"] == "CoCoOp" and metrics["epochs"] == 3
    assert metrics["extra"]["n_ctx"] == 4 and metrics["extra"]["shared_prefix"] is True
    assert metrics["extra"]["prompt_tokens"] < 20 and metrics["extra"]["trainable_precision"] == "fp32"
    ckpt = _state(tmp_path / "run", 3)
    from trainers.cocoop import CoCoOp

    assert set(ckpt["state_dict"]) == set(CoCoOp.SPEC.trainable)  # context and meta-net only, no fixed embeddings
    for key in CoCoOp.SPEC.trainable:  # every trained tensor moved
        assert not torch.equal(ckpt["state_dict"][key].float(), init[key].float()), key
    again = train.main(_args(data_root, tiny_clip, tmp_path / "eval", cache,
                             flags=("--eval-only", "--model-dir", str(tmp_path / "run"), "--load-epoch", "3")))
    assert again["accuracy"] == pytest.approx(result["accuracy"])
    assert again["macro_f1"] == pytest.approx(result["macro_f1"])


@pytest.mark.slow
def test_launcher_runs_the_declared_recipe(data_root, tiny_clip, tmp_path):
    import trainers
    from bookkeeping.recipes import recipe_argv

    assert trainers.method_spec("CoCoOp").label == "CoCoOp"
    argv = recipe_argv("CoCoOp", "imagenet", 16, "ViT-B/16")
    assert argv[argv.index("--config-file") + 1] == CONFIG
    assert argv[argv.index("OPTIM.LR") + 1] == "0.002" and argv[argv.index("OPTIM.MAX_EPOCH") + 1] == "10"
    out = tmp_path / "output"
    env = dict(os.environ, DATA=data_root, BACKBONE=tiny_clip, OUTPUT=str(out), PYTHON=sys.executable, SEEDS="1",
               TASKRES_ENGINE="builtin", EXTRA_OPTS="DATALOADER.NUM_WORKERS 0 INPUT.SIZE (32,32)",
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    env.pop("INPUT_SIZE", None)
    run = subprocess.run(["bash", "scripts/method/main.sh", "CoCoOp", "caltech101", "2"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    (path,) = (out / "caltech101" / "CoCoOp").glob("*/seed1/metrics.json")  # one run, in the launcher's layout
    metrics = json.loads(path.read_text())
    assert metrics["method"] == "CoCoOp" and metrics["epochs"] == 10 and metrics["shots"] == 2
    config = (path.parent / "config.yaml").read_text()
    assert "CTX_INIT: a photo of a" in config and "N_CTX: 4" in config


def _base_run(trainer, config, data_root, tiny_clip, cache, out, opts=()):
    train.main(_args(data_root, tiny_clip, out, cache, trainer=trainer, config=config, epochs=2,
                     opts=("DATASET.SUBSAMPLE_CLASSES", "base", *opts)))


@pytest.mark.slow
def test_base_to_new_eval_only_uses_the_class_agnostic_state(data_root, tiny_clip, cache, tmp_path):
    _base_run("CoCoOp", CONFIG, data_root, tiny_clip, cache, tmp_path / "base")
    ckpt = _state(tmp_path / "base", 2)
    assert len(ckpt["classnames"]) == 2  # the base half of the 4 classes
    eval_flags = ("--eval-only", "--model-dir", str(tmp_path / "base"), "--load-epoch", "2")
    new = train.main(_args(data_root, tiny_clip, tmp_path / "new", cache, flags=eval_flags,
                           opts=("DATASET.SUBSAMPLE_CLASSES", "new")))
    # The same evaluation by hand: a model built for the new classes, the base run's state loaded.
    trainer = make_trainer(_args(data_root, tiny_clip, tmp_path / "new_by_hand", cache,
                                 opts=("DATASET.SUBSAMPLE_CLASSES", "new")))
    assert len(trainer.classnames) == 2 and set(trainer.classnames).isdisjoint(ckpt["classnames"])
    trainer.load_model(str(tmp_path / "base"), epoch=2)
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(trainer.model.head.state_dict()[key], value.float())
    logits, labels = all_logits(trainer)
    assert new["accuracy"] == pytest.approx(100.0 * (logits.argmax(1) == labels).float().mean().item())


@pytest.mark.slow
def test_cross_dataset_imagenet_state_evaluates_on_another_dataset(data_root, tiny_clip, cache, tmp_path):
    train.main(train_args(data_root, tiny_clip, str(tmp_path / "imagenet"), trainer="CoCoOp", dataset="imagenet",
                          epochs=1, extra=("--config-file", CONFIG, "--cache-dir", str(cache))))
    result = train.main(_args(data_root, tiny_clip, tmp_path / "caltech", cache,
                              flags=("--eval-only", "--model-dir", str(tmp_path / "imagenet"), "--load-epoch", "1")))
    metrics = json.loads((tmp_path / "caltech" / "metrics.json").read_text())
    assert metrics["dataset"] == "Caltech101" and metrics["accuracy"] == pytest.approx(result["accuracy"])
    log = (tmp_path / "caltech" / "log.txt").read_text()
    assert "class-agnostic: trained on 4 classes of ImageNet, evaluated on 4 classes of Caltech101" in log


@pytest.mark.slow
def test_class_list_is_checked_unless_the_state_is_class_agnostic(data_root, tiny_clip, cache, tmp_path):
    """CoOp's unified context and CLIP-Adapter's adapter transfer to new classes; CoOp's class-specific context and
    TaskRes's residual do not."""
    coop = "configs/trainers/CoOp/rn50.yaml"
    taskres = "configs/trainers/TaskRes/rn50.yaml"
    cases = [("CoOp", coop, (), None), ("CoOp", coop, ("TRAINER.COOP.CSC", "True"), "class-specific context"),
             ("TaskRes", taskres, (), "other classes"),
             ("CLIP_Adapter", "configs/trainers/CLIP_Adapter/rn50.yaml", (), None)]
    for trainer, config, opts, error in cases:
        out = tmp_path / f"{trainer}{len(opts)}"
        _base_run(trainer, config, data_root, tiny_clip, cache, out / "base", opts=opts)
        argv = _args(data_root, tiny_clip, out / "new", cache, trainer=trainer, config=config,
                     flags=("--eval-only", "--model-dir", str(out / "base"), "--load-epoch", "2"),
                     opts=("DATASET.SUBSAMPLE_CLASSES", "new", *opts))
        if error is None:
            assert 0.0 <= train.main(argv)["accuracy"] <= 100.0
        else:
            with pytest.raises(SystemExit, match=error) as err:  # train.py: one "error: ..." line
                train.main(argv)
            assert "\n" not in str(err.value.code)


@pytest.mark.slow
def test_a_state_of_other_shapes_is_one_clear_line(data_root, tiny_clip, cache, tmp_path):
    train.main(_args(data_root, tiny_clip, tmp_path / "run", cache, epochs=1))
    trainer = make_trainer(_args(data_root, tiny_clip, tmp_path / "other", cache,
                                 opts=("TRAINER.COCOOP.CTX_INIT", "", "TRAINER.COCOOP.N_CTX", "2")))
    with pytest.raises(CheckpointError, match=r"ctx \(4, 64\) vs \(2, 64\)") as err:
        trainer.load_model(str(tmp_path / "run"), epoch=1)
    assert "\n" not in str(err.value)


def test_loads_the_public_code_checkpoint_layout(data_root, tiny_clip, cache, tmp_path):
    """The public code saves ``token_prefix``/``token_suffix`` (77 tokens) and fp16 tensors; the fixed ones are dropped."""
    trainer = make_trainer(_args(data_root, tiny_clip, tmp_path / "run", cache))
    own = trainer.model.head.state_dict()
    state = {k: torch.randn_like(v).half() for k, v in own.items()}
    state.update(token_prefix=torch.zeros(4, 1, 64).half(), token_suffix=torch.zeros(4, 72, 64).half())
    save_checkpoint({"state_dict": state, "epoch": 10}, str(tmp_path / "public" / "prompt_learner"))
    trainer.load_model(str(tmp_path / "public"), epoch=10)
    for key in own:
        assert torch.equal(trainer.model.head.state_dict()[key], state[key].float())


def test_batched_text_forward_equals_the_per_image_one(data_root, tiny_clip, cache, tmp_path):
    """All images x all classes in one call (truncated, shared prefix), or in chunks of images or of classes, give
    the logits and gradients of the public code's loop: one image at a time, 77-token prompts."""
    import trainers.cocoop as cocoop

    trainer = make_trainer(_args(data_root, tiny_clip, tmp_path / "run", cache, opts=("TRAINER.COCOOP.PREC", "fp32")))
    classes = len(trainer.classnames)
    features = trainer.test_loader.features[0][:5].float()
    calls = []
    encode = cocoop.encode_shared_prefix

    def counting(tower, prefix, suffix, eot):
        calls.append((prefix.shape[0], suffix.shape[0]))
        return encode(tower, prefix, suffix, eot)

    results = {}
    for name, truncate, per_call in [("loop", False, classes), ("one call", True, 8192), ("images", True, 2 * classes),
                                     ("classes", True, classes - 1)]:
        torch.manual_seed(0)
        head = cocoop.ConditionalPromptLearner(TextTower(trainer.clip.model), trainer.clip.tokenize, trainer.classnames,
                                               4, "a photo of a", trainer.clip.embed_dim, trainer.clip.logit_scale,
                                               truncate=truncate, prompts_per_call=per_call)
        with torch.no_grad():
            head.ctx.add_(0.3 * torch.randn_like(head.ctx))
        calls.clear()
        cocoop.encode_shared_prefix = counting
        try:
            logits = head(features)
        finally:
            cocoop.encode_shared_prefix = encode
        F.cross_entropy(logits, torch.arange(5) % classes).backward()
        results[name] = (logits.detach(), {n: p.grad.clone() for n, p in head.named_parameters()}, list(calls))
        assert all(p.grad is None for p in trainer.clip.model.parameters())
    assert results["loop"][2] == []  # the plain path: every prompt's 77 tokens
    assert results["one call"][2] == [(5, classes)]
    assert results["images"][2] == [(2, classes), (2, classes), (1, classes)]
    assert results["classes"][2] == [(1, classes - 1), (1, 1)] * 5
    ref_logits, ref_grads, _ = results["loop"]
    assert ref_logits.std() > 0
    for name in ("one call", "images", "classes"):
        logits, grads, _ = results[name]
        torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
        assert set(grads) == set(ref_grads)
        for key in grads:
            torch.testing.assert_close(grads[key], ref_grads[key], rtol=1e-4, atol=1e-6)
