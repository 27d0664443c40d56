"""Encoding seeded image views with the frozen image encoder.

View ``v`` of image ``p`` is seeded by (seed, ``p`` relative to the datasets root, ``v``): the same whatever
the number of views, the batch order or the workers, so an entry's prefix is valid and an interrupted
extraction resumes with the same pixels. Views, batches and devices: docs/feature-cache.md.
"""
import hashlib
import os
import signal
from contextlib import closing
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from torchvision.transforms.functional import pil_to_tensor

from engine import CorruptImageError, read_image
from engine.fileio import available_cpus
from engine.logs import progress_bar

DETERMINISTIC_STEPS = ("Resize", "CenterCrop", "ToTensor", "PILToTensor", "Normalize", "ConvertImageDtype",
                       "Compose")


def view_seed(seed: int, impath: str, view: int) -> int:
    """Seed of one view; ``impath`` is relative to the datasets root, so moving the root keeps the views."""
    digest = hashlib.sha256(f"{seed}|{impath}|{view}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _steps(transform) -> list:
    return list(getattr(transform, "transforms", [transform]))


def is_deterministic(transform) -> bool:
    """True when every step of ``transform`` is a known deterministic one: one view serves every epoch."""
    return all(type(s).__name__ in DETERMINISTIC_STEPS for s in _steps(transform))


def split_transform(transform) -> Optional[Tuple[Callable, torch.Tensor, torch.Tensor]]:
    """``(pil_part, mean, std)`` when ``transform`` is PIL steps, ``ToTensor``, an optional ``Normalize``:
    the workers run the PIL part (uint8), the device the rest with the same float32 operations (bit-identical
    pixels). ``None`` for another shape (then the workers run it all, in float32)."""
    steps = _steps(transform)
    names = [type(s).__name__ for s in steps]
    i = names.index("ToTensor") if "ToTensor" in names else len(names)
    if names[i:] not in (["ToTensor"], ["ToTensor", "Normalize"]):
        return None
    norm = steps[-1] if names[-1] == "Normalize" else T.Normalize((0.0,) * 3, (1.0,) * 3)  # ToTensor alone: identity
    mean, std = (torch.as_tensor(v, dtype=torch.float32) for v in (norm.mean, norm.std))
    return T.Compose(steps[:i]), mean, std


class SeededViews(Dataset):
    """Item ``i``: image ``i`` decoded once, then its views ``start..stop-1`` (uint8 when the transform splits),
    each under its own seeded RNG. A failure is returned, not raised, so the main process reports it in one
    line (a raise in a worker becomes a page-long wrapped traceback)."""

    def __init__(self, items: Sequence, transform, start: int, stop: int, seed: int, root: str = ""):
        self.items, self.root = items, root
        self.start, self.stop, self.seed = start, stop, seed
        split = split_transform(transform)
        self.transform = transform if split is None else T.Compose([split[0], pil_to_tensor])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int):
        item = self.items[idx]
        try:
            img = read_image(item.impath)
            name = os.path.relpath(item.impath, self.root) if self.root else item.impath
            out = []
            with torch.random.fork_rng(devices=[]):
                for view in range(self.start, self.stop):
                    torch.manual_seed(view_seed(self.seed, name, view))
                    out.append(self.transform(img))
            return torch.stack(out), idx
        except Exception as err:  # reported by the main process, one line
            return None, (idx, type(err).__name__, str(err).splitlines()[0] if str(err) else repr(err), item.impath)


def _collate(samples):
    failed = [s[1] for s in samples if s[0] is None]
    if failed:
        return None, failed[0]
    return torch.stack([s[0] for s in samples]), torch.tensor([s[1] for s in samples])


def _ignore_interrupts(_worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which keeps what was encoded and stops them (a forked
    worker would otherwise run the main process's handler and report the interruption as a bad image)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _raise_item_error(info) -> None:
    _, kind, message, path = info
    if kind == "FileNotFoundError":
        raise FileNotFoundError(message if path in message else f"{message} ({path})")
    if kind == "CorruptImageError":
        raise CorruptImageError(message)
    raise CorruptImageError(f"Cannot prepare image {path} ({kind}: {message}). Replace or remove the file "
                            "(and its split entry).")


def default_workers(device: torch.device) -> int:
    """Loader workers from the machine's cores: all of them on CUDA (decoding feeds the GPU), half on a CPU,
    where the encoder itself needs the cores."""
    cores = available_cpus()
    return max(1, min(16, cores if device.type == "cuda" else cores // 2))


def default_batch_size(device: torch.device) -> int:
    return 512 if device.type == "cuda" else 64


class Normalizer:
    """uint8 (or float) views on the host -> normalised model input on the device."""

    def __init__(self, backbone, mean: Optional[torch.Tensor], std: Optional[torch.Tensor]):
        self.device = backbone.device
        self.channels_last = backbone.device.type == "cuda"
        self.mean = None if mean is None else mean.to(self.device).view(1, -1, 1, 1)
        self.std = None if std is None else std.to(self.device).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.to(torch.float32).div_(255).sub_(self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


@torch.no_grad()
def encode_batches(backbone, items: Sequence, transform, start: int, stop: int, seed: int, batch_size: int,
                   num_workers: int, root: str = "", first: int = 0) -> Iterator[Tuple[int, torch.Tensor]]:
    """Yields ``(i, features)``: views ``start..stop-1`` of images ``i..i+b-1`` of ``items[first:]``, in order,
    ``[stop - start, b, D]`` fp16 on the CPU. ``batch_size`` (views per call) 0 and ``num_workers`` < 0 mean the
    device's defaults; ``root`` is what view seeds' paths are relative to. Batches are counted from image 0, so
    a resumed extraction (``first``, a batch boundary) meets the same batches, hence the same features."""
    device = backbone.device
    batch_size = batch_size if batch_size > 0 else default_batch_size(device)
    num_workers = num_workers if num_workers >= 0 else default_workers(device)
    n_views = stop - start
    split = split_transform(transform)
    normalize = Normalizer(backbone, *(split[1:] if split else (None, None)))
    images_per_batch = max(1, batch_size // n_views)  # a loader batch holds about ``batch_size`` views
    cuda = device.type == "cuda"
    loader = DataLoader(SeededViews(items[first:], transform, start, stop, seed, root), batch_size=images_per_batch,
                        shuffle=False, num_workers=num_workers, pin_memory=cuda, collate_fn=_collate,
                        prefetch_factor=4 if num_workers else None, persistent_workers=False,
                        worker_init_fn=_ignore_interrupts if num_workers else None)
    visual = backbone.model.visual
    if cuda:
        visual.to(memory_format=torch.channels_last)
    old_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cuda
    pending: List[Tuple[torch.Tensor, int, Optional[torch.cuda.Event], int]] = []

    def finished(keep: int) -> Iterator[Tuple[int, torch.Tensor]]:  # batches copied back; keep the newest ``keep``
        while len(pending) > keep:
            feats, i, event, b = pending[0]
            if event is not None:
                event.synchronize()
            pending.pop(0)
            yield first + i, feats.view(b, n_views, -1).transpose(0, 1)

    try:
        for images, idx in loader:
            if images is None:
                yield from finished(keep=0)  # what was encoded before the bad image is kept
                _raise_item_error(idx)
            b = images.shape[0]
            flat = images.flatten(0, 1)
            parts = [backbone.encode_image(normalize(flat[s:s + batch_size])).to(torch.float16)
                     for s in range(0, flat.shape[0], batch_size)]  # a batch of one image may hold more views
            feats = torch.cat(parts) if len(parts) > 1 else parts[0]
            event = None
            if cuda:  # asynchronous copy back; waited for one batch later, so the GPU never idles on it
                host = torch.empty(feats.shape, dtype=feats.dtype, pin_memory=True)
                host.copy_(feats, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                feats = host
            pending.append((feats, int(idx[0]), event, b))
            yield from finished(keep=1 if cuda else 0)
        yield from finished(keep=0)
    finally:
        torch.backends.cudnn.benchmark = old_benchmark
        if cuda:
            visual.to(memory_format=torch.contiguous_format)


def extract_features(backbone, items: Sequence, transform, views: int, seed: int, batch_size: int,
                     num_workers: int, desc: str, root: str = "", start: int = 0) -> torch.Tensor:
    """Views ``start..views-1`` of every item as ``[views - start, N, D]`` fp16 on the CPU (no cache)."""
    out = None
    n_views = views - start
    batches = encode_batches(backbone, items, transform, start, views, seed, batch_size, num_workers, root)
    with progress_bar(n_views * len(items), desc, unit="view", unit_scale=True) as bar, closing(batches):
        for i, feats in batches:
            if out is None:
                out = torch.empty(n_views, len(items), feats.shape[-1], dtype=torch.float16)
            out[:, i:i + feats.shape[1]] = feats
            bar.update(feats.shape[0] * feats.shape[1])
    return out if out is not None else torch.empty(n_views, 0, backbone.embed_dim, dtype=torch.float16)
