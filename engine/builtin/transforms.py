"""Image transforms with Dassl's semantics for the choices CLIP methods use."""
from typing import Optional

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}

SUPPORTED = ("random_resized_crop", "random_crop", "random_flip", "center_crop", "normalize")


def build_transform(cfg, is_train: bool = True, choices=None) -> Optional[T.Compose]:
    """Train: [resize] -> random (resized) crop -> flip -> tensor -> normalize.
    Test: resize the smaller edge to max(INPUT.SIZE) -> center crop -> tensor -> normalize.
    """
    if cfg.INPUT.NO_TRANSFORM:
        return None
    choices = tuple(cfg.INPUT.TRANSFORMS if choices is None else choices)
    unknown = [c for c in choices if c not in SUPPORTED]
    if unknown:
        raise ValueError(f"Unsupported INPUT.TRANSFORMS {unknown}; the built-in engine supports {SUPPORTED}")
    if cfg.INPUT.INTERPOLATION not in INTERPOLATION_MODES:
        raise ValueError(f"INPUT.INTERPOLATION must be one of {sorted(INTERPOLATION_MODES)}")
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    size = tuple(cfg.INPUT.SIZE)
    steps = []
    if is_train:
        if "random_crop" not in choices and "random_resized_crop" not in choices:
            steps.append(T.Resize(size, interpolation=interp))
        if "random_crop" in choices:
            steps.append(T.RandomCrop(size, padding=cfg.INPUT.CROP_PADDING))
        if "random_resized_crop" in choices:
            steps.append(T.RandomResizedCrop(size, scale=tuple(cfg.INPUT.RRCROP_SCALE), interpolation=interp))
        if "random_flip" in choices:
            steps.append(T.RandomHorizontalFlip())
    else:
        steps += [T.Resize(max(size), interpolation=interp), T.CenterCrop(size)]
    steps.append(T.ToTensor())
    if "normalize" in choices:
        steps.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
    return T.Compose(steps)
