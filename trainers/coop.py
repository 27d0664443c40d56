"""CoOp (Zhou et al., IJCV 2022): learnable prompt context for CLIP's frozen text encoder.

Each class's prompt is ``[SOS] [V]_1 ... [V]_M [CLASS] . [EOS]`` where the ``M = N_CTX`` context vectors
are learned (shared by all classes, or one set per class with ``CSC``) and the class token sits at the
end, middle or front (``CLASS_TOKEN_POSITION``). ``CTX_INIT`` ("a photo of a") starts the context from
those words' token embeddings, which makes the untrained model CLIP's zero-shot classifier for the
template "a photo of a {}."; otherwise the context is drawn from N(0, 0.02^2). Only the context
vectors are trained. Keys under ``TRAINER.COOP`` keep CoOp's names.

The text tower is reached through ``TextTower``, so CoOp needs an OpenAI-style tower (token embedding,
transformer, final norm, projection matrix): OpenAI weights and open_clip models built like them.
Other towers (e.g. Hugging Face text encoders) fail when the model is built, with a clear message.

How it differs from the public code, and why:

- ``CTX_INIT`` sets ``N_CTX`` to its number of BPE tokens (the public code counts words, which is
  the same for "a photo of a" but wrong for words that split into several tokens); with ``CSC`` the
  initial words are copied to every class (the public code ignores ``CSC`` when ``CTX_INIT`` is set);
- the context is kept in float32 whatever the weights' precision (fp16 weights run the text encoder
  in fp16, gradients reach the fp32 context), as TaskRes keeps its residual;
- the prompt is assembled with one gather over precomputed positions instead of a loop over classes;
- at evaluation the class text features are computed once per ``test()`` call, not once per batch;
- the text transformer runs on the prompts' first ``L`` tokens only, ``L`` = the longest prompt up to its
  end-of-text token (about 20 of 77 for "X X ... X {class}."): attention is causal and the features are
  read at the EOT token, so the padding after it never reaches them and the features are the same
  (``TRAINER.COOP.TRUNCATE_CONTEXT False`` runs all 77 tokens, to check);
- with a unified context and the class token at the end (CoOp's default), every prompt starts with the
  same SOS + context tokens, whose states cannot depend on the class (causal attention): they go
  through the transformer once, and each class's remaining tokens attend to them (exact as well);
- image features come from the feature cache (the encoder is frozen) unless ``--no-cache`` is given.

Checkpoints live in ``<output>/prompt_learner/`` with CoOp's key ``ctx``. The prompt's fixed token
embeddings (``token_prefix``/``token_suffix``) are rebuilt from the class names, not saved; CoOp's own
checkpoints, which hold them, load (those two keys are dropped).
"""
import logging
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY, CheckpointError
from trainers.backbone import TextTower
from trainers.base import ClipTrainer
from trainers.text_classifier import clean_classname

logger = logging.getLogger(__name__)

POSITIONS = ("end", "middle", "front")


def add_coop_config(cfg) -> None:
    from yacs.config import CfgNode as CN

    if "COOP" not in cfg.TRAINER:
        cfg.TRAINER.COOP = CN()
        cfg.TRAINER.COOP.N_CTX = 16                    # number of context vectors (ignored with CTX_INIT)
        cfg.TRAINER.COOP.CSC = False                   # class-specific context
        cfg.TRAINER.COOP.CTX_INIT = ""                 # initial context words, e.g. "a photo of a"
        cfg.TRAINER.COOP.PREC = "fp16"                 # fp16, fp32 or amp
        cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # end, middle or front
        cfg.TRAINER.COOP.TRUNCATE_CONTEXT = True       # encode prompts up to the longest one's EOT (exact)


def _num_tokens(tokens: torch.Tensor) -> List[int]:
    """Tokens between SOS and EOS of each tokenised text (EOS has the largest id in CLIP's vocabulary)."""
    return [int(i) - 1 for i in tokens.argmax(dim=-1)]


def prompt_order(position: str, n_ctx: int, name_lens: Sequence[int], length: int) -> torch.Tensor:
    """``[C, length]`` positions into ``[SOS, ctx_1..ctx_M, suffix...]`` that place the class tokens.

    The suffix starts with the class name's tokens, then ".", EOS and padding; the EOS position does not
    move, so the tokenised prompts still locate it.
    """
    if position not in POSITIONS:
        raise ValueError(f"TRAINER.COOP.CLASS_TOKEN_POSITION must be one of {POSITIONS}, not {position!r}")
    ctx = list(range(1, 1 + n_ctx))
    rows = []
    for name_len in name_lens:
        name = list(range(1 + n_ctx, 1 + n_ctx + name_len))
        rest = list(range(1 + n_ctx + name_len, length))
        if position == "end":
            order = [0] + ctx + name + rest
        elif position == "middle":
            half = n_ctx // 2
            order = [0] + ctx[:half] + name + ctx[half:] + rest
        else:
            order = [0] + name + ctx + rest
        rows.append(order)
    return torch.tensor(rows, dtype=torch.long)


def encode_prompts(tower: TextTower, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Projected text features of ``[C, L, width]`` prompt embeddings, for any ``L`` up to the context length.

    The positional embedding and the causal mask are cut to ``L``; with ``L`` past every prompt's EOT
    token this equals the full-length computation (rows before the EOT attend only to earlier rows).
    """
    length = embeddings.shape[1]
    x = embeddings.to(tower.dtype) + tower.positional_embedding[:length].to(tower.dtype)
    mask = tower.attn_mask
    x = tower.transformer(x, attn_mask=None if mask is None else mask[:length, :length])
    x = tower.ln_final(x)
    pooled = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)].float()
    return pooled @ tower.text_projection.float()


def _shareable(tower: TextTower) -> bool:
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
    """Causal self-attention of ``[prefix, suffix_c]`` for every class ``c``, the prefix projected once.

    ``hp [1, p, W]``, ``hs [C, s, W]`` (normalised inputs). The prefix's queries attend causally within the
    prefix; each suffix's queries attend to the whole prefix and causally within the suffix.
    """
    heads = attn.num_heads
    qp, kp, vp = (_heads(t, heads) for t in F.linear(hp, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1))
    qs, ks, vs = (_heads(t, heads) for t in F.linear(hs, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1))
    n, p, s = hs.shape[0], hp.shape[1], hs.shape[1]
    out_p = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
    keys = torch.cat([kp.expand(n, -1, -1, -1), ks], dim=2)
    values = torch.cat([vp.expand(n, -1, -1, -1), vs], dim=2)
    allowed = torch.ones(s, p + s, dtype=torch.bool, device=hs.device).tril_(p)
    out_s = F.scaled_dot_product_attention(qs, keys, values, attn_mask=allowed)

    def merge(o):
        return attn.out_proj(o.transpose(1, 2).reshape(o.shape[0], o.shape[2], -1))

    return merge(out_p), merge(out_s)


def encode_shared_prefix(tower: TextTower, prefix: torch.Tensor, suffix: torch.Tensor,
                         eot: torch.Tensor) -> torch.Tensor:
    """Projected text features of prompts ``[prefix, suffix_c]`` whose first ``p`` tokens are common to all classes.

    ``prefix [1, p, width]`` (SOS + a unified context) goes through each layer once; each class's suffix
    ``[C, s, width]`` attends to the prefix's keys and values and to its own earlier tokens. Attention is
    causal, so the prefix's states never depend on the class: this is the full computation, without
    repeating the prefix ``C`` times. ``eot``: each class's EOT position within the suffix.
    """
    p, s = prefix.shape[1], suffix.shape[1]
    dtype = tower.dtype
    pos = tower.positional_embedding.to(dtype)
    xp = prefix.to(dtype) + pos[:p]
    xs = suffix.to(dtype) + pos[p:p + s]
    for block in tower.transformer.resblocks:
        ap, as_ = _shared_attention(block.attn, block.ln_1(xp), block.ln_1(xs))
        xp = xp + block.ls_1(ap)
        xs = xs + block.ls_1(as_)
        xp = xp + block.ls_2(block.mlp(block.ln_2(xp)))
        xs = xs + block.ls_2(block.mlp(block.ln_2(xs)))
    xs = tower.ln_final(xs)
    pooled = xs[torch.arange(xs.shape[0], device=xs.device), eot].float()
    return pooled @ tower.text_projection.float()


class PromptLearner(nn.Module):
    """Learned context + fixed class-name tokens -> class text features -> cosine logits."""

    def __init__(self, tower: TextTower, tokenize, classnames: Sequence[str], n_ctx: int, ctx_init: str,
                 csc: bool, position: str, logit_scale: float, truncate: bool = True):
        super().__init__()
        self.__dict__["tower"] = tower  # frozen, not a submodule: its weights stay out of the state dict
        names = [clean_classname(c) for c in classnames]
        num_classes = len(names)
        width = tower.token_embedding.weight.shape[1]
        ctx_init = " ".join(ctx_init.replace("_", " ").split())
        with torch.no_grad():
            if ctx_init:
                init_tokens = tokenize([ctx_init])
                n_ctx = _num_tokens(init_tokens)[0]
                ctx = tower.embed_tokens(init_tokens)[0, 1:1 + n_ctx].float().clone()
                if csc:
                    ctx = ctx.unsqueeze(0).repeat(num_classes, 1, 1)
                context_text = ctx_init
                logger.info("CoOp: context initialised from %r (%d tokens)", ctx_init, n_ctx)
            else:
                if n_ctx < 1:
                    raise ValueError("TRAINER.COOP.N_CTX must be at least 1")
                ctx = torch.empty(num_classes, n_ctx, width) if csc else torch.empty(n_ctx, width)
                nn.init.normal_(ctx, std=0.02)
                context_text = " ".join(["X"] * n_ctx)
                logger.info("CoOp: random %s context of %d vectors", "class-specific" if csc else "unified", n_ctx)
            tokens = tokenize([f"{context_text} {name}." for name in names])
            if truncate:  # keep up to the longest prompt's EOT: the causal tower never looks further
                tokens = tokens[:, :int(tokens.argmax(dim=-1).max()) + 1]
            embedded = tower.embed_tokens(tokens).float()
        self.ctx = nn.Parameter(ctx.to(embedded.device))
        self.n_ctx = n_ctx
        self.csc = csc
        self.logit_scale = float(logit_scale)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("token_prefix", embedded[:, :1], persistent=False)            # SOS
        self.register_buffer("token_suffix", embedded[:, 1 + n_ctx:], persistent=False)   # CLASS . EOS pad
        self.position = position
        order = None
        if position != "end":
            name_lens = _num_tokens(tokenize(names))
            order = prompt_order(position, n_ctx, name_lens, tokens.shape[1]).to(tokens.device)
        self.register_buffer("order", order, persistent=False)
        # Unified context with the class at the end: every prompt starts with the same SOS + context tokens.
        self.share_prefix = bool(truncate and not csc and position == "end" and _shareable(tower))
        self._text_cache: Optional[torch.Tensor] = None

    def prompt_embeddings(self) -> torch.Tensor:
        """``[C, L, width]`` float32 token embeddings of every class's prompt."""
        ctx = self.ctx if self.csc else self.ctx.unsqueeze(0).expand(self.token_prefix.shape[0], -1, -1)
        prompts = torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)
        if self.order is not None:
            prompts = prompts.gather(1, self.order.unsqueeze(-1).expand(-1, -1, prompts.shape[-1]))
        return prompts

    def text_features(self) -> torch.Tensor:
        if self.share_prefix:
            prefix = torch.cat([self.token_prefix[:1], self.ctx.unsqueeze(0)], dim=1)
            eot = self.tokens.argmax(dim=-1) - prefix.shape[1]
            return encode_shared_prefix(self.tower, prefix, self.token_suffix, eot)
        return encode_prompts(self.tower, self.prompt_embeddings(), self.tokens)

    def train(self, mode: bool = True):
        self._text_cache = None  # entering or leaving evaluation: the context may have changed
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._text_cache = None
        return super()._load_from_state_dict(*args, **kwargs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            text = self.text_features()
        else:  # evaluation: the context is fixed, encode the prompts once
            if self._text_cache is None:
                self._text_cache = self.text_features()
            text = self._text_cache
        return self.logit_scale * F.normalize(features.float(), dim=-1) @ F.normalize(text, dim=-1).t()


@TRAINER_REGISTRY.register()
class CoOp(ClipTrainer):
    """Context Optimization; only ``ctx`` is trained."""

    CONFIG_NODE = "COOP"
    CHECKPOINT_NAME = "prompt_learner"
    TRAINABLE = ("ctx",)
    LABEL = "CoOp"
    TABLE_ORDER = 30
    # KaiyangZhou/CoOp@ff61507 scripts/coop/main.sh and configs/trainers/CoOp/{rn50,vit_b16}_ep{50,100,200}.yaml
    # (identical but for the backbone): SGD lr 0.002, batch 32, cosine, 1 warm-up epoch (the file); 50 epochs for
    # 1 shot and for ImageNet, 100 for 2/4 shots, 200 for 8/16; the same for every backbone.
    RECIPE_CONFIG = "configs/trainers/CoOp/rn50.yaml"

    @staticmethod
    def recipe(dataset: str, shots: int) -> dict:
        epochs = 50 if dataset == "imagenet" or shots == 1 else (100 if shots <= 4 else 200)
        return {"OPTIM.LR": 0.002, "OPTIM.MAX_EPOCH": epochs}

    def build_head(self) -> nn.Module:
        mcfg = self.method_cfg
        position = mcfg.CLASS_TOKEN_POSITION
        if position not in POSITIONS:
            raise ValueError(f"TRAINER.COOP.CLASS_TOKEN_POSITION must be one of {POSITIONS}, not {position!r}")
        tower = TextTower(self.clip.model)
        return PromptLearner(tower, self.clip.tokenize, self.classnames, int(mcfg.N_CTX), mcfg.CTX_INIT,
                             bool(mcfg.CSC), position, self.clip.logit_scale,
                             truncate=bool(mcfg.get("TRUNCATE_CONTEXT", True)))

    def load_state_for_eval(self, name: str, checkpoint: dict) -> None:
        state = dict(checkpoint.get("state_dict", {}))
        for fixed in ("token_prefix", "token_suffix"):  # CoOp saves them; they are rebuilt from the class names
            state.pop(fixed, None)
        if set(state) != {"ctx"}:
            raise CheckpointError(f"Not a CoOp checkpoint: keys {sorted(state)}, expected ['ctx']")
        own = self._models[name].ctx
        if state["ctx"].shape != own.shape:
            raise CheckpointError(
                f"The checkpoint's context has shape {tuple(state['ctx'].shape)} but this configuration needs "
                f"{tuple(own.shape)} (check TRAINER.COOP.N_CTX, CTX_INIT, CSC and the class list)")
        super().load_state_for_eval(name, dict(checkpoint, state_dict=state))


add_config = add_coop_config  # marks a method module (trainers/__init__.py discovers it)
