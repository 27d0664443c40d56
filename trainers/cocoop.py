"""CoCoOp (Zhou et al., CVPR 2022, "Conditional Prompt Learning"): CoOp's context, shifted per image by a meta-net.

Facts from KaiyangZhou/CoOp@ff61507 ``trainers/cocoop.py`` and
``configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml``. Model, recipe, base-to-novel use and
deviations (none changing the model's function): docs/methods/cocoop.md.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from engine import TRAINER_REGISTRY
from trainers.backbone import TextTower
from trainers.base import ClipTrainer, add_method_config
from trainers.prompt_learning import ContextPrompts, encode_shared_prefix
from trainers.spec import declare


def add_config(cfg) -> None:
    """``TRAINER.COCOOP``, with the public code's defaults (its train.py); the recipe's config sets N_CTX 4 and
    CTX_INIT "a photo of a"."""
    add_method_config(cfg, "COCOOP",
                      N_CTX=16,                # context vectors (ignored with CTX_INIT)
                      CTX_INIT="",             # initial context words, e.g. "a photo of a"
                      PREC="fp16",             # fp16, fp32 or amp
                      PROMPTS_PER_CALL=8192)   # (image, class) prompts per text-encoder call (memory bound)


def meta_net(vis_dim: int, ctx_dim: int) -> nn.Sequential:
    """The public code's meta-net: image feature -> a bias for every context vector (bottleneck d/16)."""
    if vis_dim < 16:
        raise ValueError(f"CoCoOp's meta-net needs an image feature of at least 16 dimensions, not {vis_dim}")
    return nn.Sequential(OrderedDict([("linear1", nn.Linear(vis_dim, vis_dim // 16)), ("relu", nn.ReLU(inplace=True)),
                                      ("linear2", nn.Linear(vis_dim // 16, ctx_dim))]))


class ConditionalPromptLearner(ContextPrompts):
    """Float image features ``[B, D]`` -> per-image prompts for every class -> cosine logits ``[B, C]``."""

    def __init__(self, tower: TextTower, tokenize, classnames, n_ctx: int, ctx_init: str, vis_dim: int,
                 logit_scale: float, truncate: bool = True, prompts_per_call: int = 8192):
        super().__init__(tower, tokenize, classnames, n_ctx, ctx_init, logit_scale, truncate, "CoCoOp")
        self.meta_net = meta_net(vis_dim, self.ctx.shape[-1]).to(self.ctx.device)
        if prompts_per_call < 1:
            raise ValueError(f"TRAINER.COCOOP.PROMPTS_PER_CALL must be at least 1, not {prompts_per_call}")
        self.prompts_per_call = int(prompts_per_call)

    def _encode(self, ctx: torch.Tensor, classes: slice) -> torch.Tensor:
        """``[b, c, D]`` text features of images' contexts ``ctx [b, M, width]`` with the classes ``classes``."""
        b = ctx.shape[0]
        prefix = torch.cat([self.token_prefix.expand(b, -1, -1), ctx], dim=1)
        suffix, tokens = self.token_suffix[classes], self.tokens[classes]
        if self.share_prefix:
            return encode_shared_prefix(self.tower, prefix, suffix, tokens.argmax(dim=-1) - prefix.shape[1])
        c = suffix.shape[0]
        prompts = torch.cat([prefix.unsqueeze(1).expand(-1, c, -1, -1), suffix.unsqueeze(0).expand(b, -1, -1, -1)], 2)
        return self.tower(prompts.flatten(0, 1), tokens.repeat(b, 1)).view(b, c, -1)

    def text_features(self, ctx: torch.Tensor) -> torch.Tensor:
        """``[B, C, D]``: every image's prompts for every class, ``prompts_per_call`` (image, class) pairs a call."""
        num_classes = self.tokens.shape[0]
        class_step = min(num_classes, self.prompts_per_call)
        image_step = max(1, self.prompts_per_call // num_classes)
        return torch.cat([torch.cat([self._encode(part, slice(c, c + class_step))
                                     for c in range(0, num_classes, class_step)], dim=1)
                          for part in ctx.split(image_step)], dim=0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        image = F.normalize(features.float(), dim=-1)
        ctx = self.ctx.unsqueeze(0) + self.meta_net(image).float().unsqueeze(1)  # [B, M, width]: shifted per image
        text = F.normalize(self.text_features(ctx), dim=-1)
        return self.logit_scale * torch.einsum("bd,bcd->bc", image, text)


def cocoop_recipe(dataset: str, shots: int) -> dict:
    """One setting for every dataset and shot count (the config file holds it): SGD lr 0.002, batch 1, 10 epochs,
    cosine with one constant warm-up epoch at 1e-5, 4 context tokens from "a photo of a"."""
    return {"OPTIM.LR": 0.002, "OPTIM.MAX_EPOCH": 10}


@TRAINER_REGISTRY.register()
class CoCoOp(ClipTrainer):
    """Conditional Context Optimization; the context and the meta-net are trained."""

    SPEC = declare(
        config_node="COCOOP", checkpoint_name="prompt_learner",
        trainable=("ctx", "meta_net.linear1.weight", "meta_net.linear1.bias", "meta_net.linear2.weight",
                   "meta_net.linear2.bias"),
        class_agnostic=True, launch_only_keys=("TRAINER.COCOOP.PROMPTS_PER_CALL",),  # a memory bound, exact
        label="CoCoOp", recipe_config="configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
        recipe=cocoop_recipe)

    def build_head(self) -> nn.Module:
        mcfg = self.method_cfg
        return ConditionalPromptLearner(TextTower(self.clip.model), self.clip.tokenize, self.classnames,
                                        int(mcfg.N_CTX), mcfg.CTX_INIT, self.clip.embed_dim, self.clip.logit_scale,
                                        prompts_per_call=int(mcfg.PROMPTS_PER_CALL))

    def metrics_extra(self) -> dict:
        """The deviations from the public code (none changes the function; see the module docstring)."""
        head = self.model.head
        return {"n_ctx": head.n_ctx, "ctx_init": self.method_cfg.CTX_INIT, "prompt_tokens": int(head.tokens.shape[1]),
                "shared_prefix": head.share_prefix, "prompts_per_call": head.prompts_per_call,
                "trainable_precision": "fp32",
                # The public config and numbers are ViT-B/16 only (docs/fidelity.md); another backbone is our setting.
                "published_backbone": "ViT-B/16"}

    def load_state_for_eval(self, name: str, checkpoint: dict) -> None:
        state = {k: v for k, v in checkpoint.get("state_dict", {}).items()
                 if k not in ("token_prefix", "token_suffix")}  # the public code saves them; rebuilt from the names
        super().load_state_for_eval(name, dict(checkpoint, state_dict=state))
