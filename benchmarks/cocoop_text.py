"""CoCoOp's text side: the public code's per-image loop (77 tokens) against our batched, truncated, shared-prefix call.

CoCoOp runs the text tower for every (image, class) pair, so this is its cost. The benchmark builds a random-weight
CLIP of a real architecture (the text tower of RN50 and ViT-B/16: width 512, 12 layers), ``--classes`` class names of
1-4 words, and times one training step (forward + backward) and one evaluation batch (forward, no gradients) of
``--images`` images, median of ``--repeats``. Prints a markdown table.

    python benchmarks/cocoop_text.py --arch ViT-B/16 --classes 50 --images 2
"""
import argparse
import os
import sys

import open_clip
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import markdown_table, median_seconds  # noqa: E402
from trainers.backbone import TextTower  # noqa: E402
from trainers.cocoop import ConditionalPromptLearner  # noqa: E402
from trainers.random_clip import build_openai_architecture  # noqa: E402

WORDS = ("tabby", "golden", "snowy", "barn", "river", "stone", "paper", "electric", "wooden", "giant", "pocket", "night")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="ViT-B/16", help="RN50, RN101, ViT-B/32 or ViT-B/16 (random weights)")
    p.add_argument("--classes", type=int, default=50)
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = build_openai_architecture(args.arch).requires_grad_(False)
    tokenize = open_clip.get_tokenizer("ViT-B-16")
    tower = TextTower(model)
    names = [" ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(1 + i % 4)) + f" {i}"
             for i in range(args.classes)]
    feats = torch.randn(args.images, model.visual.output_dim)
    rows = []
    # The public code's loop: one image per call, 77 tokens. Ours: every image x class in one call.
    for label, truncate, share, per_call in (("per image, 77 tokens (public code)", False, False, args.classes),
                                             ("batched, truncated", True, False, 1 << 20),
                                             ("batched, truncated, shared prefix (ours)", True, True, 1 << 20)):
        head = ConditionalPromptLearner(tower, tokenize, names, 4, "a photo of a", model.visual.output_dim, 100.0,
                                        truncate=truncate, prompts_per_call=per_call)
        head.share_prefix = head.share_prefix and share

        def step(head=head):
            head.zero_grad()
            head(feats).logsumexp(1).sum().backward()

        def evaluate(head=head):
            with torch.no_grad():
                head(feats)

        rows.append((label, int(head.tokens.shape[1]), median_seconds(step, repeats=args.repeats),
                     median_seconds(evaluate, repeats=args.repeats)))
    print(f"{args.arch} text tower, {args.classes} classes x {args.images} images, {torch.get_num_threads()} threads\n")
    print("\n".join(markdown_table(["text forward", "tokens", "train step s", "eval batch s"],
                                   [(label, tokens, f"{t:.2f}", f"{e:.2f}") for label, tokens, t, e in rows])))
    print(f"\nspeed-up of ours: train {rows[0][2] / rows[-1][2]:.1f}x, eval {rows[0][3] / rows[-1][3]:.1f}x")


if __name__ == "__main__":
    main()
