"""The built-in engine: few-shot sampling, LR schedule, optimizer defaults, checkpoints, evaluator, selection."""
import math
import os
import subprocess
import sys

import pytest
import torch

from engine import (
    DatasetBase,
    Datum,
    build_lr_scheduler,
    build_optimizer,
    get_cfg_default,
    load_checkpoint,
    save_checkpoint,
    set_random_seed,
)
from engine.errors import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _items(num_labels=5, per_label=30):
    # Labels interleaved so "first appearance" order differs from sorted order.
    order = [3, 1, 4, 0, 2][:num_labels]
    return [Datum(f"/img/{lab}_{i}.jpg", lab, 0, f"class{lab}") for i in range(per_label) for lab in order]


def _fewshot(seed, k=4):
    set_random_seed(seed)
    return DatasetBase(train_x=_items()).generate_fewshot_dataset(_items(), num_shots=k)


def test_fewshot_same_seed_same_items_other_seed_other_items():
    a, b, c = _fewshot(1), _fewshot(1), _fewshot(2)
    assert [d.impath for d in a] == [d.impath for d in b]
    assert [d.impath for d in a] != [d.impath for d in c]
    labels = [d.label for d in a]
    assert labels == [3] * 4 + [1] * 4 + [4] * 4 + [0] * 4 + [2] * 4  # first-appearance order, K per label


def test_fewshot_matches_random_sample_per_label():
    """The picks are exactly random.sample(items_of_label, K), label by label, from the seeded global RNG."""
    import random

    set_random_seed(7)
    expected = []
    groups = {}
    for d in _items():
        groups.setdefault(d.label, []).append(d)
    for items in groups.values():
        expected.extend(random.sample(items, 3))
    assert _fewshot(7, k=3) == expected


def test_fewshot_short_class_takes_all(caplog):
    items = _items(per_label=2)
    set_random_seed(1)
    out = DatasetBase(train_x=items).generate_fewshot_dataset(items, num_shots=5)
    assert len(out) == len(items)
    assert "fewer than 5" in caplog.text


def _optim_cfg(**kw):
    cfg = get_cfg_default()
    cfg.OPTIM.NAME = "adam"
    cfg.OPTIM.LR = 2e-3
    cfg.OPTIM.MAX_EPOCH = 10
    cfg.OPTIM.LR_SCHEDULER = "cosine"
    cfg.OPTIM.WARMUP_EPOCH = 1
    cfg.OPTIM.WARMUP_TYPE = "constant"
    cfg.OPTIM.WARMUP_CONS_LR = 1e-5
    for k, v in kw.items():
        setattr(cfg.OPTIM, k, v)
    return cfg.OPTIM


def test_cosine_with_constant_warmup_matches_closed_form():
    ocfg = _optim_cfg()
    param = torch.nn.Parameter(torch.zeros(3))
    optim = build_optimizer([param], ocfg)
    sched = build_lr_scheduler(optim, ocfg)
    seen = []
    for _ in range(ocfg.MAX_EPOCH):
        seen.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    assert seen[0] == pytest.approx(1e-5)
    for e in range(1, ocfg.MAX_EPOCH):
        assert seen[e] == pytest.approx(2e-3 * (1 + math.cos(math.pi * (e - 1) / ocfg.MAX_EPOCH)) / 2)


def test_scheduler_state_round_trips_and_loads_weights_only(tmp_path):
    ocfg = _optim_cfg()
    param = torch.nn.Parameter(torch.zeros(3))
    optim = build_optimizer([param], ocfg)
    sched = build_lr_scheduler(optim, ocfg)
    for _ in range(4):
        optim.step()
        sched.step()
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    optim2 = build_optimizer([torch.nn.Parameter(torch.zeros(3))], ocfg)
    sched2 = build_lr_scheduler(optim2, ocfg)
    sched2.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_adam_defaults_are_dassls():
    cfg = get_cfg_default()
    assert cfg.OPTIM.WEIGHT_DECAY == 5e-4
    optim = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg.OPTIM)
    assert isinstance(optim, torch.optim.Adam) and optim.param_groups[0]["weight_decay"] == 5e-4


def test_unknown_optimizer_and_scheduler_are_rejected():
    with pytest.raises(ValueError, match="Unknown optimizer"):
        build_optimizer([torch.nn.Parameter(torch.zeros(2))], _optim_cfg(NAME="lamb"))
    optim = build_optimizer([torch.nn.Parameter(torch.zeros(2))], _optim_cfg())
    with pytest.raises(ValueError, match="Unknown LR scheduler"):
        build_lr_scheduler(optim, _optim_cfg(LR_SCHEDULER="poly"))


def test_checkpoint_layout_and_round_trip(tmp_path):
    state = {"state_dict": {"module.w": torch.arange(3.0)}, "epoch": 5, "optimizer": None, "scheduler": None}
    path = save_checkpoint(state, str(tmp_path / "prompt_learner"))
    assert path.endswith(os.path.join("prompt_learner", "model.pth.tar-5"))
    assert (tmp_path / "prompt_learner" / "checkpoint").read_text().strip() == "model.pth.tar-5"
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(3.0))  # "module." stripped


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    path = save_checkpoint({"state_dict": {"w": torch.ones(1000)}, "epoch": 1}, str(tmp_path))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(str(tmp_path / "nope.pth.tar-3"))


def test_evaluator_accuracy_and_macro_f1():
    from engine import build_evaluator

    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    ev = build_evaluator(cfg, lab2cname={0: "a", 1: "b"})
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    ev.process(logits, torch.tensor([0, 0, 1, 1]))
    res = ev.evaluate()
    assert res["accuracy"] == pytest.approx(75.0)
    assert res["error"] == pytest.approx(25.0)
    # class 0: P=2/3 R=1 -> F1 0.8; class 1: P=1 R=0.5 -> F1 2/3
    assert res["macro_f1"] == pytest.approx(100 * (0.8 + 2 / 3) / 2)
    assert res["perclass_accuracy"] == pytest.approx(75.0)


def test_forced_dassl_engine_without_dassl_is_one_clear_message():
    env = dict(os.environ, TASKRES_ENGINE="dassl")
    proc = subprocess.run([sys.executable, "train.py", "--trainer", "TaskRes"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "TASKRES_ENGINE=dassl but the `dassl` package is not installed" in proc.stderr
    assert "Traceback" not in proc.stderr


def _lrs(ocfg, epochs):
    param = torch.nn.Parameter(torch.zeros(1))
    optim = build_optimizer([param], ocfg)
    sched = build_lr_scheduler(optim, ocfg)
    seen = []
    for _ in range(epochs):
        seen.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    return seen


def test_linear_warmup_then_single_and_multi_step():
    linear = _lrs(_optim_cfg(LR_SCHEDULER="single_step", STEPSIZE=(3,), GAMMA=0.1, WARMUP_EPOCH=2,
                             WARMUP_TYPE="linear", WARMUP_MIN_LR=1e-4), 7)
    assert linear[:2] == pytest.approx([1e-4, 1e-4 + (2e-3 - 1e-4) / 2])
    assert linear[2:] == pytest.approx([2e-3, 2e-3, 2e-3, 2e-4, 2e-4])  # steps every 3 epochs after warm-up
    multi = _lrs(_optim_cfg(LR_SCHEDULER="multi_step", STEPSIZE=(2, 4), GAMMA=0.5, WARMUP_EPOCH=0), 6)
    assert multi == pytest.approx([2e-3, 2e-3, 1e-3, 1e-3, 5e-4, 5e-4])
