"""``python -m features du|prune ROOT``: the feature cache's disk use, and pruning it."""
import argparse
import logging
import os
from typing import Dict, Optional, Sequence

from features.store import list_entries, prune

logger = logging.getLogger("features")


def _describe(e: Dict) -> str:
    d = e["describe"]
    what = " ".join(f"{k}={d[k]}" for k in ("dataset", "split", "shots", "seed", "backbone") if k in d)
    parts = f"  + {e['parts']} part(s) of an interrupted extraction" if e["parts"] else ""
    return f"{os.path.basename(e['path'])}  {e['views']:>4} views  {e['bytes'] / 2**20:9.1f} MB  {what}{parts}"


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m features", description="Feature cache: disk use, pruning")
    sub = p.add_subparsers(dest="command", required=True)
    du = sub.add_parser("du", aliases=["list"], help="list entries and their disk use")
    du.add_argument("root")
    pr = sub.add_parser("prune", help="remove unused entries")
    pr.add_argument("root")
    pr.add_argument("--older-than-days", type=float, default=None, help="remove entries unused for this long")
    pr.add_argument("--keep-gb", type=float, default=None, help="then remove the least recently used beyond this size")
    pr.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not os.path.isdir(args.root):
        raise SystemExit(f"error: {args.root} is not a feature cache folder")
    if args.command != "prune":
        entries = list_entries(args.root)
        for e in entries:
            logger.info(_describe(e))
        logger.info("%d entries, %.2f GB in %s", len(entries), sum(e["bytes"] for e in entries) / 2**30, args.root)
        return
    if args.older_than_days is None and args.keep_gb is None:
        raise SystemExit("error: prune needs --older-than-days DAYS and/or --keep-gb GB")
    removed = prune(args.root, args.older_than_days, args.keep_gb, args.dry_run)
    for e in removed:
        logger.info("%s %s", "would remove" if args.dry_run else "removed", _describe(e))
    logger.info("%s %d entries, %.2f GB", "Would free" if args.dry_run else "Freed", len(removed),
                sum(e["bytes"] for e in removed) / 2**30)


if __name__ == "__main__":
    main()
