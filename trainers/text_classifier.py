"""The zero-shot text classifier, built once and shared by every method."""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

from trainers.backbone import ClipBackbone


def clean_classname(name: str) -> str:
    """Class names are shown to the text encoder with underscores as spaces ("sea_lake" -> "sea lake").

    Zero-shot CLIP and CoOp do this; the original TaskRes code fed the raw names to its base
    classifier. We use one rule everywhere so that TaskRes at initialisation *is* zero-shot CLIP.
    """
    return name.replace("_", " ")


def prompts_for(classnames: Sequence[str], template: str) -> List[str]:
    return [template.format(clean_classname(c)) for c in classnames]


def pooled_template_features(backbone: ClipBackbone, classnames: Sequence[str],
                             templates: Sequence[str]) -> torch.Tensor:
    """``[T, C, W]`` text features before the projection, one slice per template."""
    return torch.stack([backbone.encode_text_pooled(prompts_for(classnames, t)) for t in templates])


def build_zero_shot_classifier(backbone: ClipBackbone, classnames: Sequence[str], templates: Sequence[str],
                               normalize_each: bool = False,
                               text_projection: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Return a ``[num_classes, embed_dim]`` float32 matrix of class text embeddings.

    Each class's embedding is the mean over ``templates`` of its prompt embeddings. With
    ``normalize_each=False`` (TaskRes's base) the mean is over unnormalised embeddings; with True
    (CoOp's ZeroshotCLIP2 ensemble) each embedding is L2-normalised before averaging. Rows are not
    normalised here: heads normalise after adding whatever they learn. ``text_projection`` replaces
    the model's own projection (TaskRes*'s enhanced base).
    """
    if not templates:
        raise ValueError("At least one prompt template is needed")
    total = None
    for template in templates:
        prompts = prompts_for(classnames, template)
        if text_projection is None:
            emb = backbone.encode_text(prompts)
        else:
            emb = backbone.encode_text_pooled(prompts) @ text_projection.to(backbone.device, torch.float32)
        if normalize_each:
            emb = F.normalize(emb, dim=-1)
        total = emb if total is None else total + emb
    return total / len(templates)
