"""Linear probe at ImageNet size: the C search with scikit-learn's L-BFGS and with the torch solver.

What each mode measures and the results: docs/performance.md, benchmarks/results/linear_probe.md.

    python benchmarks/linear_probe.py agreement
    python benchmarks/linear_probe.py time [--classes 1000 --shots 16 --dim 1024] [--device cuda]
"""
import argparse
import logging
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainers.linear_probe import fit_probe, search_regularization  # noqa: E402

logger = logging.getLogger("benchmarks.linear_probe")
GRID = [1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6]


def problem(classes: int, shots: int, dim: int, val_per_class: int, test_per_class: int):
    """Class means (spread 0.25) plus Gaussian noise, at the scale of raw RN50 features."""
    rng = np.random.RandomState(0)
    means = rng.randn(classes, dim).astype(np.float32) * 0.25

    def draw(per_class):
        y = np.repeat(np.arange(classes), per_class)
        return (means[y] + rng.randn(len(y), dim).astype(np.float32)), y

    return draw(shots), draw(val_per_class), draw(test_per_class)


def agreement(args) -> None:
    (xt, yt), (xv, yv), (xs, ys) = problem(args.classes_small, args.shots, args.dim_small, 4, 20)
    for c in GRID:
        a, b = fit_probe(xt, yt, c, 1000, "sklearn"), fit_probe(xt, yt, c, 1000, "torch")
        la, lb = xs @ a.coef.T + a.intercept, xs @ b.coef.T + b.intercept
        logger.info("C %-6g iterations sklearn %4d torch %4d | test logits: largest %.3g, largest gap %.3g | "
                    "same test prediction %.1f%% | test accuracy %.2f%% / %.2f%%", c, a.iterations, b.iterations,
                    np.abs(la).max(), np.abs(la - lb).max(), (a.predict(xs) == b.predict(xs)).mean() * 100,
                    (a.predict(xs) == ys).mean() * 100, (b.predict(xs) == ys).mean() * 100)
    chosen = []  # (C, test accuracy) of each solver's search
    for solver in ("sklearn", "torch"):
        start = time.time()
        c, acc, _, probe = search_regularization(xt, yt, xv, yv, GRID, 7, 1000, solver)
        test = float((probe.predict(xs) == ys).mean() * 100)
        chosen.append((c, test))
        logger.info("%-8s C %.4g  val %.2f%%  test %.2f%%  %.1f s", solver, c, acc, test, time.time() - start)
    (c1, t1), (c2, t2) = chosen
    logger.info("same C: %s%s; test accuracy gap %.2f points", c1 == c2,
                "" if c1 == c2 else " (the two searches reach the same best val accuracy at different C)", abs(t1 - t2))


def timing(args) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device(args.device)
    (xt, yt), (xv, yv), _ = problem(args.classes, args.shots, args.dim, 4, 1)
    logger.info("problem: %d x %d features, %d classes, device %s", *xt.shape, args.classes, device)
    if args.sklearn_iters > 0:
        total = 0.0
        for c in GRID:
            start = time.time()
            probe = fit_probe(xt, yt, c, args.sklearn_iters, "sklearn")
            dt = time.time() - start
            per_iter = dt / max(probe.iterations, 1)
            capped = probe.iterations >= args.sklearn_iters
            projected = per_iter * 1000 if capped else dt
            total += projected
            logger.info("sklearn C %-6g %4d iterations in %6.1f s (%.2f s/iteration)%s", c, probe.iterations, dt,
                        per_iter, f" -> ~{projected:.0f} s at 1000" if capped else "")
        logger.info("sklearn grid (7 fits): ~%.0f s projected; the refinement adds ~15 fits near the best C", total)
    logging.getLogger("trainers.linear_probe").setLevel(logging.INFO)
    start = time.time()
    c, acc, history, _ = search_regularization(xt, yt, xv, yv, GRID, 7, args.torch_iters, "torch", device)
    logger.info("torch search: %d fits in %.1f s (C %.4g, val %.2f%%)", len(history), time.time() - start, c, acc)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("agreement", "time"))
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--classes-small", type=int, default=20)
    p.add_argument("--dim-small", type=int, default=64)
    p.add_argument("--sklearn-iters", type=int, default=5, help="iteration cap per sklearn fit (0: skip sklearn)")
    p.add_argument("--torch-iters", type=int, default=1000, help="L-BFGS iterations per torch fit")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("trainers.linear_probe").setLevel(logging.WARNING)
    (agreement if args.mode == "agreement" else timing)(args)


if __name__ == "__main__":
    main()
