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

Both text-side tricks, the context's initialisation and the prompts' tokenisation live in
``trainers/prompt_learning.py``, shared with CoCoOp. A unified context does not depend on the class list
(``class_agnostic``): a checkpoint evaluates on other classes (base-to-novel, cross-dataset); a class-specific
one (``CSC``) is refused there.

Checkpoints live in ``<output>/prompt_learner/`` with CoOp's key ``ctx``. The prompt's fixed token
embeddings (``token_prefix``/``token_suffix``) are rebuilt from the class names, not saved; CoOp's own
checkpoints, which hold them, load (those two keys are dropped).
"""
import logging
from typing import Sequence

import torch
from torch import nn

from engine import TRAINER_REGISTRY, CheckpointError
from trainers.backbone import TextTower
from trainers.base import ClipTrainer
from trainers.heads import EvalTextCache, cosine_logits
from trainers.prompt_learning import (
    POSITIONS,
    class_prompts,
    encode_prompts,
    encode_shared_prefix,
    init_context,
    num_tokens,
    prompt_order,
    shareable,
)
from trainers.spec import declare
from trainers.text_classifier import clean_classname

logger = logging.getLogger(__name__)


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


class PromptLearner(EvalTextCache):
    """Learned context + fixed class-name tokens -> class text features -> cosine logits."""

    def __init__(self, tower: TextTower, tokenize, classnames: Sequence[str], n_ctx: int, ctx_init: str,
                 csc: bool, position: str, logit_scale: float, truncate: bool = True):
        super().__init__()
        self.__dict__["tower"] = tower  # frozen, not a submodule: its weights stay out of the state dict
        num_classes = len(classnames)
        ctx, context_text, n_ctx = init_context(tower, tokenize, ctx_init, n_ctx, "CoOp",
                                                leading=(num_classes,) if csc else ())
        if csc and ctx.dim() == 2:  # initial words: the same context for every class
            ctx = ctx.unsqueeze(0).repeat(num_classes, 1, 1)
        tokens, sos, suffix = class_prompts(tower, tokenize, classnames, context_text, n_ctx, truncate)
        self.ctx = nn.Parameter(ctx.to(sos.device))
        self.n_ctx = n_ctx
        self.csc = csc
        self.logit_scale = float(logit_scale)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("token_prefix", sos, persistent=False)        # SOS
        self.register_buffer("token_suffix", suffix, persistent=False)     # CLASS . EOS pad
        self.position = position
        order = None
        if position != "end":
            name_lens = num_tokens(tokenize([clean_classname(c) for c in classnames]))
            order = prompt_order(position, n_ctx, name_lens, tokens.shape[1]).to(tokens.device)
        self.register_buffer("order", order, persistent=False)
        # Unified context with the class at the end: every prompt starts with the same SOS + context tokens.
        self.share_prefix = bool(truncate and not csc and position == "end" and shareable(tower))

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
            return encode_shared_prefix(self.tower, prefix, self.token_suffix, eot)[0]
        return encode_prompts(self.tower, self.prompt_embeddings(), self.tokens)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.cached_text(self.text_features), self.logit_scale)


def coop_recipe(dataset: str, shots: int) -> dict:
    """KaiyangZhou/CoOp@ff61507 scripts/coop/main.sh and configs/trainers/CoOp/{rn50,vit_b16}_ep{50,100,200}.yaml
    (identical but for the backbone): SGD lr 0.002, batch 32, cosine, 1 warm-up epoch (the file); 50 epochs for
    1 shot and for ImageNet, 100 for 2/4 shots, 200 for 8/16; the same for every backbone."""
    epochs = 50 if dataset == "imagenet" or shots == 1 else (100 if shots <= 4 else 200)
    return {"OPTIM.LR": 0.002, "OPTIM.MAX_EPOCH": epochs}


@TRAINER_REGISTRY.register()
class CoOp(ClipTrainer):
    """Context Optimization; only ``ctx`` is trained."""

    SPEC = declare(
        config_node="COOP", checkpoint_name="prompt_learner", trainable=("ctx",),
        class_agnostic=True,  # a unified context evaluates on other classes; a class-specific one (CSC) is refused
        launch_only_keys=("TRAINER.COOP.TRUNCATE_CONTEXT",),  # exact either way (a test compares)
        label="CoOp", table_order=30, recipe_config="configs/trainers/CoOp/rn50.yaml", recipe=coop_recipe)

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
        theirs = checkpoint.get("classnames")
        if self._models[name].csc and theirs is not None and list(theirs) != list(self.classnames):
            raise CheckpointError(f"This checkpoint's class-specific context (CSC) was trained on {len(theirs)} classes "
                                  f"of {checkpoint.get('dataset')}, not on the {len(self.classnames)} other classes evaluated "
                                  "here; only a unified context (CSC False) transfers to other classes")
        own = self._models[name].ctx
        if state["ctx"].shape != own.shape:
            raise CheckpointError(
                f"The checkpoint's context has shape {tuple(state['ctx'].shape)} but this configuration needs "
                f"{tuple(own.shape)} (check TRAINER.COOP.N_CTX, CTX_INIT, CSC and the class list)")
        super().load_state_for_eval(name, dict(checkpoint, state_dict=state))


add_config = add_coop_config  # marks a method module (trainers/__init__.py discovers it)
