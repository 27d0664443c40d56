"""Prompt learning on CLIP's text tower, shared by CoOp and CoCoOp (not a method module: no ``add_config``).

Why one module: both methods feed learned context vectors through the frozen text transformer, and the
two exact speed-ups that make that affordable — encoding only up to the longest prompt's end-of-text
(EOT) token, and running the prompts' common SOS + context prefix through the transformer once — must
be written (and tested) once. No method module imports another, so these pieces live here.

Why both tricks are exact: CLIP's text transformer is causal and its feature is read at the EOT token.
Tokens after the longest EOT never reach any feature (truncation), and the states of tokens before the
class name cannot depend on the class (the shared prefix).
"""
import logging
from typing import Callable, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from trainers.backbone import TextTower
from trainers.text_classifier import clean_classname

logger = logging.getLogger(__name__)

POSITIONS = ("end", "middle", "front")


def num_tokens(tokens: torch.Tensor) -> List[int]:
    """Tokens between SOS and EOS of each tokenised text (EOS has the largest id in CLIP's vocabulary)."""
    return [int(i) - 1 for i in tokens.argmax(dim=-1)]


class ContextPrompts(nn.Module):
    """The learned context ``ctx`` and the fixed parts of every class's "<context> <name>." prompt.

    ``ctx_init`` ("a photo of a") starts the context ``[*leading, n_ctx, width]`` from those words' token
    embeddings and sets ``n_ctx`` to their number of BPE tokens; otherwise it is drawn from N(0, 0.02^2) and the
    prompt holds ``n_ctx`` "X" placeholders. ``tokens [C, L]``, ``token_prefix [1, 1, width]`` (SOS) and
    ``token_suffix [C, L - 1 - n_ctx, width]`` (CLASS . EOS pad) are float32 and fixed: not trained, not saved
    (rebuilt from the class names, shown with ``_`` as spaces). With ``truncate``, ``L`` ends at the longest
    prompt's EOT token (the causal tower never looks further); else ``L`` is the context length (77).
    ``label`` names the method in the log and in errors.
    """

    def __init__(self, tower: TextTower, tokenize: Callable, classnames: Sequence[str], n_ctx: int, ctx_init: str,
                 logit_scale: float, truncate: bool, label: str, leading: Tuple[int, ...] = ()):
        super().__init__()
        self.__dict__["tower"] = tower  # frozen, not a submodule: its weights stay out of the state dict
        context_text = " ".join(ctx_init.replace("_", " ").split())
        with torch.no_grad():
            if context_text:
                init_tokens = tokenize([context_text])
                n_ctx = num_tokens(init_tokens)[0]
                ctx = tower.embed_tokens(init_tokens)[0, 1:1 + n_ctx].float().expand(*leading, -1, -1).clone()
                logger.info("%s: context initialised from %r (%d tokens)", label, context_text, n_ctx)
            elif n_ctx < 1:
                raise ValueError(f"TRAINER.{label.upper()}.N_CTX must be at least 1 (or set CTX_INIT)")
            else:
                ctx = nn.init.normal_(torch.empty(*leading, n_ctx, tower.token_embedding.weight.shape[1]), std=0.02)
                context_text = " ".join(["X"] * n_ctx)
                logger.info("%s: random %s context of %d vectors", label, "class-specific" if leading else "unified",
                            n_ctx)
            tokens = tokenize([f"{context_text} {clean_classname(c)}." for c in classnames])
            if truncate:
                tokens = tokens[:, :int(tokens.argmax(dim=-1).max()) + 1]
            embedded = tower.embed_tokens(tokens).float()
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(ctx.to(embedded.device))
        self.logit_scale = float(logit_scale)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("token_prefix", embedded[:1, :1], persistent=False)
        self.register_buffer("token_suffix", embedded[:, 1 + n_ctx:], persistent=False)
        self.share_prefix = bool(truncate and shareable(tower))


def prompt_order(position: str, n_ctx: int, name_lens: Sequence[int], length: int) -> torch.Tensor:
    """``[C, length]`` positions into ``[SOS, ctx_1..ctx_M, suffix...]`` that place the class tokens.

    The suffix starts with the class name's tokens, then ".", EOS and padding; the EOS position does not
    move, so the tokenised prompts still locate it.
    """
    ctx = list(range(1, 1 + n_ctx))
    half = n_ctx // 2
    rows = []
    for name_len in name_lens:
        name = list(range(1 + n_ctx, 1 + n_ctx + name_len))
        body = {"end": ctx + name, "middle": ctx[:half] + name + ctx[half:], "front": name + ctx}[position]
        rows.append([0] + body + list(range(1 + n_ctx + name_len, length)))
    return torch.tensor(rows, dtype=torch.long)


def shareable(tower: TextTower) -> bool:
    """The shared-prefix path drives open_clip's standard residual attention blocks; others take the plain path."""
    blocks = getattr(tower.transformer, "resblocks", None)
    return bool(blocks) and all(
        all(hasattr(b, a) for a in ("ln_1", "attention", "ls_1", "ln_2", "mlp", "ls_2"))
        and not hasattr(b, "ln_1_kv") and isinstance(getattr(b, "attn", None), nn.MultiheadAttention)
        and b.attn.in_proj_weight is not None and b.attn.bias_k is None and not b.attn.add_zero_attn
        and b.attn.dropout == 0.0 and not getattr(tower.transformer, "grad_checkpointing", False) for b in blocks)


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, length, width = x.shape
    return x.view(b, length, n_heads, width // n_heads).transpose(1, 2)


def _shared_attention(attn: nn.MultiheadAttention, hp: torch.Tensor, hs: torch.Tensor):
    """Causal self-attention of ``[prefix_b, suffix_bc]`` for every prefix ``b`` and class ``c``, each prefix
    projected once.

    ``hp [B, p, W]``, ``hs [B * C, s, W]`` (normalised inputs, prefix-major). A prefix's queries attend causally
    within the prefix; each suffix's queries attend to its whole prefix and causally within the suffix.
    """
    heads = attn.num_heads
    qp, kp, vp = (_heads(t, heads) for t in F.linear(hp, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1))
    qs, ks, vs = (_heads(t, heads) for t in F.linear(hs, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1))
    p, s = hp.shape[1], hs.shape[1]
    classes = hs.shape[0] // hp.shape[0]
    out_p = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
    keys = torch.cat([kp.repeat_interleave(classes, dim=0), ks], dim=2)  # each prefix for its classes
    values = torch.cat([vp.repeat_interleave(classes, dim=0), vs], dim=2)
    allowed = torch.ones(s, p + s, dtype=torch.bool, device=hs.device).tril_(p)
    out_s = F.scaled_dot_product_attention(qs, keys, values, attn_mask=allowed)

    def merge(o):
        return attn.out_proj(o.transpose(1, 2).reshape(o.shape[0], o.shape[2], -1))

    return merge(out_p), merge(out_s)


def encode_shared_prefix(tower: TextTower, prefix: torch.Tensor, suffix: torch.Tensor,
                         eot: torch.Tensor) -> torch.Tensor:
    """``[B, C, D]`` projected text features of the prompts ``[prefix_b, suffix_c]`` for every ``b`` and ``c``.

    ``prefix [B, p, width]`` (SOS + a context: CoOp's one, or CoCoOp's per image) goes through each layer
    once; each class's suffix ``[C, s, width]`` attends to its prefix's keys and values and to its own
    earlier tokens. ``eot``: each class's EOT position within the suffix.
    """
    batch, p = prefix.shape[:2]
    classes, s = suffix.shape[:2]
    dtype = tower.dtype
    pos = tower.positional_embedding.to(dtype)
    xp = prefix.to(dtype) + pos[:p]
    xs = (suffix.to(dtype) + pos[p:p + s]).unsqueeze(0).expand(batch, -1, -1, -1).reshape(batch * classes, s, -1)
    for block in tower.transformer.resblocks:
        ap, as_ = _shared_attention(block.attn, block.ln_1(xp), block.ln_1(xs))
        xp = xp + block.ls_1(ap)
        xs = xs + block.ls_1(as_)
        xp = xp + block.ls_2(block.mlp(block.ln_2(xp)))
        xs = xs + block.ls_2(block.mlp(block.ln_2(xs)))
    xs = tower.ln_final(xs)
    pooled = xs[torch.arange(xs.shape[0], device=xs.device), eot.repeat(batch)].float()
    return (pooled @ tower.text_projection.float()).view(batch, classes, -1)
