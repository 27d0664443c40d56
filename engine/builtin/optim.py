"""Optimizers with Dassl's defaults and semantics (the schedule is the project's own: engine/schedule.py)."""
from typing import Iterable, Union

import torch
from torch import nn

AVAILABLE_OPTIMIZERS = ("adam", "amsgrad", "sgd", "rmsprop", "adamw")


def build_optimizer(model: Union[nn.Module, Iterable], optim_cfg, param_groups=None) -> torch.optim.Optimizer:
    """``OPTIM.NAME`` over the parameters that require gradients; weight decay (Dassl's default 5e-4) is, for
    Adam/SGD, L2 added to the gradient, as in torch."""
    name = optim_cfg.NAME
    if name not in AVAILABLE_OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {AVAILABLE_OPTIMIZERS}")
    if param_groups is not None:
        params = param_groups
    elif isinstance(model, nn.Module):
        if optim_cfg.STAGED_LR:
            new_layers = set(optim_cfg.NEW_LAYERS)
            base, new = [], []
            for mod_name, module in model.named_children():
                (new if mod_name in new_layers else base).extend(
                    p for p in module.parameters() if p.requires_grad)
            params = [{"params": base, "lr": optim_cfg.LR * optim_cfg.BASE_LR_MULT}, {"params": new}]
        else:
            params = [p for p in model.parameters() if p.requires_grad]
    else:
        params = [p for p in model if not isinstance(p, torch.Tensor) or p.requires_grad]
    lr, wd = optim_cfg.LR, optim_cfg.WEIGHT_DECAY
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, betas=betas, amsgrad=name == "amsgrad")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=betas)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                               dampening=optim_cfg.SGD_DAMPNING, nesterov=optim_cfg.SGD_NESTEROV)
    return torch.optim.RMSprop(params, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                               alpha=optim_cfg.RMSPROP_ALPHA)
