"""CoOp (Zhou et al., IJCV 2022): learnable prompt context for CLIP's frozen text encoder.

Public code: KaiyangZhou/CoOp@ff61507 ``trainers/coop.py``. Prompt layout, options, deviations and checkpoint
compatibility: docs/methods/coop.md.
"""
from typing import Sequence

import torch
from torch import nn

from engine import TRAINER_REGISTRY, CheckpointError
from trainers.backbone import TextTower
from trainers.base import ClipTrainer, add_method_config
from trainers.heads import EvalTextCache, cosine_logits
from trainers.prompt_learning import POSITIONS, ContextPrompts, encode_shared_prefix, num_tokens, prompt_order
from trainers.spec import declare
from trainers.text_classifier import clean_classname


def add_config(cfg) -> None:
    add_method_config(cfg, "COOP",
                      N_CTX=16,                    # number of context vectors (ignored with CTX_INIT)
                      CSC=False,                   # class-specific context
                      CTX_INIT="",                 # initial context words, e.g. "a photo of a"
                      PREC="fp16",                 # fp16, fp32 or amp
                      CLASS_TOKEN_POSITION="end",  # end, middle or front
                      TRUNCATE_CONTEXT=True)       # encode prompts up to the longest one's EOT (exact)


class PromptLearner(EvalTextCache, ContextPrompts):
    """Learned context + fixed class-name tokens -> class text features -> cosine logits."""

    def __init__(self, tower: TextTower, tokenize, classnames: Sequence[str], n_ctx: int, ctx_init: str,
                 csc: bool, position: str, logit_scale: float, truncate: bool = True):
        if position not in POSITIONS:
            raise ValueError(f"TRAINER.COOP.CLASS_TOKEN_POSITION must be one of {POSITIONS}, not {position!r}")
        super().__init__(tower, tokenize, classnames, n_ctx, ctx_init, logit_scale, truncate, "CoOp",
                         leading=(len(classnames),) if csc else ())
        self.csc = csc
        order = None
        if position != "end":
            name_lens = num_tokens(tokenize([clean_classname(c) for c in classnames]))
            order = prompt_order(position, self.n_ctx, name_lens, self.tokens.shape[1]).to(self.tokens.device)
        self.register_buffer("order", order, persistent=False)
        # Unified context with the class at the end: every prompt starts with the same SOS + context tokens.
        self.share_prefix = self.share_prefix and not csc and order is None

    def text_features(self) -> torch.Tensor:
        if self.share_prefix:
            prefix = torch.cat([self.token_prefix, self.ctx.unsqueeze(0)], dim=1)
            eot = self.tokens.argmax(dim=-1) - prefix.shape[1]
            return encode_shared_prefix(self.tower, prefix, self.token_suffix, eot)[0]
        classes = self.tokens.shape[0]
        ctx = self.ctx if self.csc else self.ctx.unsqueeze(0).expand(classes, -1, -1)
        prompts = torch.cat([self.token_prefix.expand(classes, -1, -1), ctx, self.token_suffix], dim=1)
        if self.order is not None:  # the class name moved to the middle or the front
            prompts = prompts.gather(1, self.order.unsqueeze(-1).expand(-1, -1, prompts.shape[-1]))
        return self.tower(prompts, self.tokens)

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
        return PromptLearner(TextTower(self.clip.model), self.clip.tokenize, self.classnames, int(mcfg.N_CTX),
                             mcfg.CTX_INIT, bool(mcfg.CSC), mcfg.CLASS_TOKEN_POSITION, self.clip.logit_scale,
                             truncate=bool(mcfg.get("TRUNCATE_CONTEXT", True)))

    def load_state_for_eval(self, name: str, checkpoint: dict) -> None:
        state = {k: v for k, v in checkpoint.get("state_dict", {}).items()
                 if k not in ("token_prefix", "token_suffix")}  # CoOp saves them; rebuilt from the class names
        theirs = checkpoint.get("classnames")  # keys and shapes: checked by the base class, as for every method
        if self._models[name].csc and theirs is not None and list(theirs) != list(self.classnames):
            raise CheckpointError(f"This checkpoint's class-specific context (CSC) was trained on {len(theirs)} classes "
                                  f"of {checkpoint.get('dataset')}, not on the {len(self.classnames)} other classes evaluated "
                                  "here; only a unified context (CSC False) transfers to other classes")
        super().load_state_for_eval(name, dict(checkpoint, state_dict=state))
