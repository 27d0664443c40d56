"""Parity with Dassl's learning-rate schedule (KaiyangZhou/Dassl.pytorch@c61a1b5, ``dassl/optim/lr_scheduler.py``,
``build_lr_scheduler``: cosine over MAX_EPOCH wrapped in ``ConstantWarmupScheduler``), the schedule of
TaskRes, CoOp and CLIP-Adapter.

``DASSL_LRS`` was recorded by running Dassl's own ``build_lr_scheduler`` (torch 2.1.2; it fails on
torch >= 2.2, see README "Engine") with LR 0.002, one constant warm-up epoch at 1e-5, stepping once per
epoch: the learning rate in effect during each epoch.
"""
import pytest
import torch

from engine import build_lr_scheduler, get_cfg_default

DASSL_LRS = {
    5: {0: 1e-05, 1: 0.002, 2: 0.0018090169943749475, 3: 0.0013090169943749475, 4: 0.0006909830056250527},
    200: {0: 1e-05, 1: 0.002, 2: 0.0019998766324816606, 50: 0.0017181262977631875, 100: 0.0010157073173118199,
          150: 0.0003040872034076853, 199: 4.934396342683993e-07},
}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("max_epoch", sorted(DASSL_LRS))
def test_learning_rate_per_epoch_matches_dassl(max_epoch, optimizer):
    cfg = get_cfg_default()
    cfg.OPTIM.LR = 0.002
    cfg.OPTIM.MAX_EPOCH = max_epoch
    cfg.OPTIM.LR_SCHEDULER = "cosine"
    cfg.OPTIM.WARMUP_EPOCH = 1
    cfg.OPTIM.WARMUP_TYPE = "constant"
    cfg.OPTIM.WARMUP_CONS_LR = 1e-5
    param = torch.nn.Parameter(torch.zeros(1))
    optim = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)([param], lr=0.002)
    sched = build_lr_scheduler(optim, cfg.OPTIM)
    seen = {}
    for epoch in range(max_epoch):
        seen[epoch] = optim.param_groups[0]["lr"]
        optim.step()
        sched.step()
    for epoch, lr in DASSL_LRS[max_epoch].items():
        assert seen[epoch] == pytest.approx(lr, rel=1e-9, abs=1e-15), epoch
