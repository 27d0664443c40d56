"""Pieces every CLIP head shares: the cosine logits, a fixed cosine classifier, checkpoint checks.

Why here: the cosine logits ``logit_scale * norm(f) @ norm(W)^T`` are CLIP's classifier for zero-shot
CLIP, TaskRes, CLIP-Adapter, ZS-LP/CLAP and the prompt learners; written once, a head cannot drift
(e.g. forget the fp32 cast of fp16 cached features). Not a method module (no ``add_config``).
"""
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from engine import CheckpointError


def cosine_logits(features: torch.Tensor, weights: torch.Tensor, logit_scale: float,
                  weights_normalized: bool = False) -> torch.Tensor:
    """``logit_scale * norm(f) @ norm(W)^T`` in fp32: ``features`` ``[B, D]``, ``weights`` ``[C, D]``.

    ``weights_normalized``: the rows of ``weights`` are unit vectors already (a head that normalises a
    fixed matrix once), so they are used as they are.
    """
    if not weights_normalized:
        weights = F.normalize(weights.float(), dim=-1)
    return logit_scale * F.normalize(features.float(), dim=-1) @ weights.t()


class CosineClassifier(nn.Module):
    """A fixed class-weight matrix used as a cosine classifier (not saved: it is rebuilt from text)."""

    def __init__(self, weights: torch.Tensor, logit_scale: float):
        super().__init__()
        self.register_buffer("weights", F.normalize(weights.float(), dim=-1), persistent=False)
        self.logit_scale = float(logit_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.weights, self.logit_scale, weights_normalized=True)


def check_checkpoint_state(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], method: str,
                           hint: str = "") -> None:
    """Refuse, with one line naming the problem, a state whose keys or shapes are not ``own``'s.

    ``load_state_dict`` would also fail, but with a multi-line message that does not say which run or
    setting made the mismatch; ``hint`` names the settings that decide the shapes.
    """
    if set(state) != set(own):
        raise CheckpointError(f"Not a {method} checkpoint: keys {sorted(state)}, expected {sorted(own)}")
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(f"The checkpoint's {key} has shape {tuple(state[key].shape)} but this "
                                  f"configuration needs {tuple(value.shape)}" + (f" ({hint})" if hint else ""))
