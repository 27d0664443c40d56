"""The zero-shot-initialised prototype probe that ZS-LP and CLAP share (Silva-Rodriguez et al., CVPR 2024).

CLAP is ZS-LP plus a loss term, and a method module never imports another, so the head, the template policy,
the training views and the published setting live here once (not a method module: no ``add_config``).
Public code: jusiro/CLAP@dbdf409 ``trainers/adapters.py`` (``AdapterMethod`` with INIT ``ZS``,
``CustomCLIP.forward_lp``, ``run_epoch``). Method and views: docs/methods/zs-lp-clap.md.
"""

import torch
from torch import nn

from features import FeatureLoader
from trainers.base import ClipTrainer
from trainers.heads import cosine_logits
from trainers.spec import CacheRequest
from trainers.templates import IMAGENET_ONLY, OWN, SELECT_OWN


class PrototypeProbe(nn.Module):
    """Trainable class prototypes, initialised at the zero-shot ones, used as a cosine classifier."""

    def __init__(self, text_features: torch.Tensor, logit_scale: float):
        super().__init__()
        base = text_features.float()
        self.prototypes = nn.Parameter(base.clone())
        self.register_buffer("base", base.clone(), persistent=False)  # the zero-shot prototypes (CLAP's anchor)
        self.logit_scale = float(logit_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return cosine_logits(features, self.prototypes, self.logit_scale)


class ViewPoolLoader(FeatureLoader):
    """A ``FeatureLoader`` whose epoch draws its ``len(self)`` batches from the start of a seeded permutation of all
    (view, image) pairs of ``features`` ``[V, N, D]``, not from one view."""

    def __iter__(self):
        views, n = self.features.shape[0], self.features.shape[1]
        gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(views * n, generator=gen)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            image = idx % n
            yield {"img": self.features[idx // n, image].to(self.device, torch.float32),
                   "label": self.labels[image.to(self.labels.device)], "index": image}


def probe_recipe(dataset: str, shots: int) -> dict:
    """The published setting for every dataset and shot count (the file holds SGD, batch 256, cosine)."""
    return {"OPTIM.LR": 0.1, "OPTIM.MAX_EPOCH": 300}


# What ZS-LP and CLAP declare alike (each adds its config node and label: ``declare(**PROBE, ...)``).
PROBE = dict(checkpoint_name="prototypes", trainable=("prototypes",), cache=CacheRequest(train_views="pool", pool=20),
             recipe_config="configs/trainers/CLAP/rn50.yaml", recipe=probe_recipe)


class PrototypeProbeTrainer(ClipTrainer):
    """Zero-shot-initialised linear probe; the prototypes are the only trained parameters. Not registered:
    ZS-LP and CLAP subclass it, each declaring ``SPEC = declare(**PROBE, config_node=..., label=...)``."""

    # ImageNet (not its variants): the 7 select templates plus its own; every other dataset: its own
    # (jusiro/CLAP ``adapters.py`` ``_get_base_text_features``).
    template_policy = dict(imagenet=SELECT_OWN, others=OWN, imagenet_names=IMAGENET_ONLY)

    def use_train_features(self) -> None:
        """The cached views as the original feeds them: each epoch, batches from a shuffled pool of all views."""
        super().use_train_features()
        loader = self.train_loader_x
        if isinstance(loader, FeatureLoader):
            self.train_loader_x = ViewPoolLoader(loader.features, loader.labels, loader.batch_size, True,
                                                 loader.drop_last, self.device, max(int(self.cfg.SEED), 0))
            self.cache_info["protocol"] = (f"{loader.num_views} views per image; each epoch {len(loader)} batches "
                                           "from a shuffled pool of all views (the original's)")

    def build_head(self) -> nn.Module:
        text = self.text_classifier(clean=False)
        return PrototypeProbe(text, self.clip.logit_scale)
