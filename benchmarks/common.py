"""What the benchmarks share: random-weight checkpoints, CUDA-synchronised timing, markdown tables."""
import os
import time
from typing import Callable, List, Sequence

import torch

from trainers.random_clip import write_random_clip

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_clip(workdir: str, arch: str, image_size: int, kind: str = "") -> str:
    """A random-weight ``arch`` checkpoint in OpenAI's format, written once under ``workdir`` (random weights do
    not change timings). ``kind``: ``write_random_clip``'s (default: ``vit`` for ``tiny``, else ``arch``)."""
    path = os.path.join(workdir, f"random-{arch.replace('/', '-')}.pt")
    if not os.path.isfile(path):
        write_random_clip(path, kind=kind or {"tiny": "vit"}.get(arch, arch), image_size=image_size)
    return path


def sync(device) -> None:
    """Wait for the work queued on a CUDA ``device`` (a clock around it then measures it)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], device=None, repeats: int = 1) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (the upper one for an even count)."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(map(str, row)) + " |" for row in rows]
