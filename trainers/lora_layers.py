"""Low-rank adapters (LoRA) on the attention projections of CLIP's transformers.

A shared building block, not a method module (no ``add_config``): any method may adapt an encoder with it.
Arithmetic as MaxZanella/CLIP-LoRA@358f0d7 ``loralib/layers.py``; details: docs/methods/clip-lora.md.
"""
import math
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainers.backbone import BackboneError

PROJECTIONS = ("q", "k", "v", "o")


class LoRAError(BackboneError):
    """The backbone or the LoRA settings cannot be used; the message says what to change."""


class LoRA(nn.Module):
    """The low-rank update ``s * dropout(x) (B A)^T`` added to one frozen ``in_features -> out_features`` projection."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, dropout: float):
        super().__init__()
        if rank < 1:
            raise LoRAError(f"The LoRA rank must be at least 1, not {rank}")
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = float(alpha) / math.sqrt(rank)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # B @ A first, as the original merges it, so the numbers follow the same order of operations.
        delta = self.lora_B @ self.lora_A
        return F.linear(self.dropout(x).to(delta.dtype), delta) * self.scaling


class LoRAAttention(nn.Module):
    """``nn.MultiheadAttention``'s computation (no extra k/v biases, no key padding mask) with LoRA on some of
    its q, k, v and output projections. Returns ``(output, None)`` like ``need_weights=False``."""

    def __init__(self, mha: nn.MultiheadAttention, adapters: Dict[str, LoRA]):
        super().__init__()
        if (not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn
                or mha.in_proj_weight is None):
            raise LoRAError("LoRA needs plain self-attention blocks (one fused q/k/v projection, no extra k/v "
                            "biases); this backbone's attention is different")
        unknown = sorted(set(adapters) - set(PROJECTIONS))
        if unknown:
            raise LoRAError(f"Unknown LoRA projections {unknown}; choose among {list(PROJECTIONS)}")
        # The same Parameter objects, under nn.MultiheadAttention's names: the state dict does not change.
        self.in_proj_weight = mha.in_proj_weight
        self.in_proj_bias = mha.in_proj_bias
        self.out_proj = mha.out_proj
        self.num_heads, self.batch_first, self.attn_dropout = mha.num_heads, mha.batch_first, mha.dropout
        self.__dict__["adapters"] = dict(adapters)  # owned (trained, saved) by the method, not by the backbone

    def _project(self, x: torch.Tensor, index: int, name: str) -> torch.Tensor:
        width = self.in_proj_weight.shape[1]
        rows = slice(index * width, (index + 1) * width)
        bias = None if self.in_proj_bias is None else self.in_proj_bias[rows]
        out = F.linear(x, self.in_proj_weight[rows], bias)
        adapter = self.adapters.get(name)
        return out if adapter is None else out + adapter(x).to(out.dtype)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_padding_mask=None,
                need_weights: bool = False, attn_mask=None, **unused):
        if key_padding_mask is not None or need_weights:
            raise LoRAError("LoRAAttention supports neither key_padding_mask nor need_weights (CLIP uses neither)")
        if not self.batch_first:  # [L, N, E] -> [N, L, E]
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        batch, length, width = query.shape
        heads = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, -1, heads, width // heads).transpose(1, 2)

        q = split(self._project(query, 0, "q"))
        k = split(self._project(key, 1, "k"))
        v = split(self._project(value, 2, "v"))
        mask = attn_mask  # nn.MultiheadAttention's: bool True = blocked; [L, S] or [batch * heads, L, S]
        if mask is not None:
            mask = ~mask if mask.dtype == torch.bool else mask.to(q.dtype)
            mask = mask.view(batch, heads, *mask.shape[-2:]) if mask.dim() == 3 else mask
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.attn_dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, length, width)
        merged = self.out_proj(out)
        if "o" in self.adapters:
            merged = merged + self.adapters["o"](out).to(merged.dtype)
        return (merged if self.batch_first else merged.transpose(0, 1)), None


def add_lora(transformer: nn.Module, projections: Sequence[str], rank: int, alpha: float,
             dropout: float) -> nn.ModuleList:
    """Put LoRA on ``projections`` of the attention of every block of an open_clip ``Transformer``.

    Returns the adapters, one ``ModuleDict`` (projection -> ``LoRA``) per block, for the caller to own. The
    adapters are float32 on the weights' device whatever the weights' precision (as the original keeps them).
    """
    blocks = getattr(transformer, "resblocks", None)
    if not blocks:
        raise LoRAError("LoRA needs an open_clip transformer (a 'resblocks' list of attention blocks)")
    if not projections:
        raise LoRAError(f"No LoRA projections given; choose among {list(PROJECTIONS)}")
    layers = nn.ModuleList()
    for block in blocks:
        attn = getattr(block, "attn", None)
        if not isinstance(attn, nn.MultiheadAttention):
            raise LoRAError(f"LoRA needs nn.MultiheadAttention in every block; found {type(attn).__name__}")
        width = attn.embed_dim
        layer = nn.ModuleDict({p: LoRA(width, width, rank, alpha, dropout) for p in projections})
        layer.to(attn.in_proj_weight.device)
        block.attn = LoRAAttention(attn, dict(layer.items()))
        layers.append(layer)
    return layers
