"""Pieces CLIP heads share: the cosine logits, a fixed cosine classifier, a per-evaluation text cache.

Why here: the cosine logits ``logit_scale * norm(f) @ norm(W)^T`` are CLIP's classifier for zero-shot CLIP
(also inside Tip-Adapter and GDA), TaskRes, CLIP-Adapter, ZS-LP/CLAP and the prompt learners; written once,
a head cannot drift (e.g. forget the fp32 cast of fp16 cached features). Not a method module (no
``add_config``). Checkpoint keys and shapes are checked once, for every method, by
``trainers.base.check_state_shapes``.
"""
import torch
import torch.nn.functional as F
from torch import nn


def cosine_logits(features: torch.Tensor, weights: torch.Tensor, logit_scale: float,
                  weights_normalized: bool = False) -> torch.Tensor:
    """``logit_scale * norm(f) @ norm(W)^T`` in fp32: ``features`` ``[B, D]``, ``weights`` ``[C, D]`` (used
    as they are when ``weights_normalized``: a head that normalises a fixed matrix once)."""
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


class EvalTextCache(nn.Module):
    """Text features made by trainable parameters (prompts, LoRA), computed once per evaluation, not per
    batch: ``cached_text(compute)`` calls ``compute()`` while training or with gradients on, else keeps the
    first result. Switching mode or loading a state dict forgets it, so a loaded or further-trained state is
    never served stale features."""

    _text_cache = None

    def cached_text(self, compute) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return compute()
        if self._text_cache is None:
            self._text_cache = compute()
        return self._text_cache

    def train(self, mode: bool = True):
        self._text_cache = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._text_cache = None
        return super()._load_from_state_dict(*args, **kwargs)
