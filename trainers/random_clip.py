"""Random-weight CLIPs built with open_clip's own classes and saved as OpenAI-format state dicts.

Used where real weights cannot be had: the tests, the offline demo, and the benchmarks (which time
the real RN50 / ViT-B/16 architectures with random weights). The files load through the normal
backbone loader (``--backbone /path/file.pt``), so the path users take with ``RN50.pt`` runs too.
The tiny text tower has width 64 and one head (OpenAI's loader infers heads = width / 64) and the
real 49408-token vocabulary, so CLIP's tokenizer applies. Accuracy from random weights means nothing.
"""
import os

import torch

from engine.libraries import import_open_clip


def build_random_clip(kind: str = "vit", embed_dim: int = 32, image_size: int = 32, seed: int = 0):
    model = import_open_clip().model
    CLIP, CLIPTextCfg, CLIPVisionCfg = model.CLIP, model.CLIPTextCfg, model.CLIPVisionCfg  # noqa: N806

    torch.manual_seed(seed)
    if kind == "vit":
        vision = CLIPVisionCfg(layers=2, width=64, patch_size=8, image_size=image_size)
    elif kind == "vit-small":  # the CPU reference: width 384, 6 layers, patch 8
        vision = CLIPVisionCfg(layers=6, width=384, patch_size=8, image_size=image_size)
    elif kind == "resnet":
        vision = CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, image_size=image_size)
    elif kind in OPENAI_ARCHITECTURES:
        return build_openai_architecture(kind)
    else:
        raise ValueError(f"Unknown random CLIP kind {kind!r}: vit, resnet or one of {sorted(OPENAI_ARCHITECTURES)}")
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1)
    return CLIP(embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True).eval()


# Real architectures with random weights, for GPU timing (open_clip config names).
OPENAI_ARCHITECTURES = {"RN50": "RN50", "RN101": "RN101", "ViT-B/32": "ViT-B-32", "ViT-B/16": "ViT-B-16"}


def build_openai_architecture(name: str):
    return import_open_clip().create_model(OPENAI_ARCHITECTURES[name], pretrained=None, force_quick_gelu=True).eval()


def write_random_clip(path: str, kind: str = "vit", embed_dim: int = 32, image_size: int = 32, seed: int = 0,
                    fp16: bool = True) -> str:
    """Save a random CLIP's state dict like OpenAI's files (fp16 weights when ``fp16``); return the path."""
    model = build_random_clip(kind, embed_dim, image_size, seed)
    state = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(state, path)
    return path
