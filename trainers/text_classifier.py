"""The zero-shot text classifier, built once and shared by every method."""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

from trainers.backbone import ClipBackbone


def clean_classname(name: str) -> str:
    """A class name as zero-shot CLIP, CoOp, CLIP-Adapter and Tip-Adapter show it to the text encoder:
    underscores become spaces ("sea_lake" -> "sea lake").

    The original TaskRes code does not do this for its base classifier (``clean=False`` below), so
    on datasets whose names hold underscores (Food101 ``apple_pie``, UCF101 ``Apply_Eye_Makeup``,
    ...) its base differs from zero-shot CLIP.
    """
    return name.replace("_", " ")


def prompts_for(classnames: Sequence[str], template: str, clean: bool = True) -> List[str]:
    return [template.format(clean_classname(c) if clean else c) for c in classnames]


def pooled_template_features(backbone: ClipBackbone, classnames: Sequence[str],
                             templates: Sequence[str], clean: bool = True) -> torch.Tensor:
    """``[T, C, W]`` text features before the projection, one slice per template."""
    return torch.stack([backbone.encode_text_pooled(prompts_for(classnames, t, clean)) for t in templates])


def build_zero_shot_classifier(backbone: ClipBackbone, classnames: Sequence[str], templates: Sequence[str],
                               normalize_each: bool = False, text_projection: Optional[torch.Tensor] = None,
                               clean: bool = True) -> torch.Tensor:
    """Return a ``[num_classes, embed_dim]`` float32 matrix of class text embeddings.

    Each class's embedding is the mean over ``templates`` of its prompt embeddings. With
    ``normalize_each=False`` (TaskRes's base) the mean is over unnormalised embeddings; with True
    (CoOp's ZeroshotCLIP2 ensemble) each embedding is L2-normalised before averaging. Rows are not
    normalised here: heads normalise after adding whatever they learn. ``text_projection`` replaces
    the model's own projection (TaskRes*'s enhanced base). ``clean=False`` keeps the class names as
    the dataset gives them (the original TaskRes base).
    """
    if not templates:
        raise ValueError("At least one prompt template is needed")
    embeddings = []
    for template in templates:
        prompts = prompts_for(classnames, template, clean)
        if text_projection is None:
            emb = backbone.encode_text(prompts)
        else:
            emb = backbone.encode_text_pooled(prompts) @ text_projection.to(backbone.device, torch.float32)
        embeddings.append(F.normalize(emb, dim=-1) if normalize_each else emb)
    return sum(embeddings) / len(templates)
