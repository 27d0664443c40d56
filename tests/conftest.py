"""Shared fixtures: a tiny random CLIP file and small learnable synthetic datasets, built once per session."""
import os

import pytest

from tests.fixtures.synthetic_datasets import write_dataset
from trainers.random_clip import write_random_clip

os.environ.setdefault("TASKRES_ENGINE", "builtin")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    return write_random_clip(str(tmp_path_factory.mktemp("clip") / "tiny-vit.pt"), kind="vit")


@pytest.fixture(scope="session")
def tiny_clip_rn(tmp_path_factory) -> str:
    return write_random_clip(str(tmp_path_factory.mktemp("clip") / "tiny-rn.pt"), kind="resnet", embed_dim=48,
                           image_size=64)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> str:
    """Caltech101 (4 classes, 20 images each) and ImageNet in their real layouts under one root."""
    root = str(tmp_path_factory.mktemp("data"))
    write_dataset("Caltech101", root, num_classes=4, per_class=20, image_size=32)
    write_dataset("ImageNet", root, num_classes=4, per_class=12, image_size=32)
    return root


def train_args(root: str, clip: str, out: str, trainer: str = "TaskRes", dataset: str = "caltech101",
               shots: int = 4, seed: int = 1, epochs: int = 2, extra=()) -> list:
    """A ``train.py`` command line for the tiny CLIP: 32 px input, small batches, no workers."""
    return [
        "--root", root, "--output-dir", out, "--seed", str(seed), "--trainer", trainer,
        "--dataset-config-file", f"configs/datasets/{dataset}.yaml",
        "--config-file", "configs/trainers/TaskRes/rn50.yaml", "--backbone", clip,
        *extra,
        "DATASET.NUM_SHOTS", str(shots), "OPTIM.MAX_EPOCH", str(epochs), "INPUT.SIZE", "(32, 32)",
        "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "16",
        "FEATURE_CACHE.NUM_VIEWS", "2", "TRAIN.PRINT_FREQ", "100",
    ]


def run_launcher(method: str, dataset: str, shots: int, data_root: str, clip: str, output, extra_opts: str = "",
                 **env_vars) -> dict:
    """``scripts/method/main.sh METHOD DATASET SHOTS`` for one seed on the tiny CLIP; the run's metrics.json."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, DATA=data_root, BACKBONE=clip, OUTPUT=str(output), PYTHON=sys.executable, SEEDS="1",
               TASKRES_ENGINE="builtin", EXTRA_OPTS=f"DATALOADER.NUM_WORKERS 0 {extra_opts}".strip(), **env_vars)
    if "INPUT_SIZE" not in env_vars:
        env.pop("INPUT_SIZE", None)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(["bash", "scripts/method/main.sh", method, dataset, str(shots)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = [os.path.join(d, "metrics.json") for d, _, files in os.walk(os.path.join(str(output), dataset, method))
              if "metrics.json" in files]
    with open(path) as f:
        return dict(json.load(f), path=path)


def make_trainer(argv):
    """Build (without training) the trainer a ``train.py`` command line would run, seeded like train.py."""
    from bookkeeping.config import parse
    from engine import build_trainer, set_random_seed

    cfg = parse(argv)[1]
    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    return build_trainer(cfg)


def all_logits(trainer, split: str = "test"):
    """Logits and labels of ``trainer`` over a whole split (features or images, as its loader gives)."""
    import torch

    loader = trainer.test_loader if split == "test" else trainer.val_loader
    trainer.set_model_mode("eval")
    outs, labels = [], []
    with torch.no_grad():
        for batch in loader:
            x, y = trainer.parse_batch_test(batch)
            outs.append(trainer.model_inference(x))
            labels.append(y)
    return torch.cat(outs), torch.cat(labels)
