#!/usr/bin/env bash
# The embedded default: zero-shot CLIP, TaskRes and the baselines on scikit-learn's digits, in a few minutes
# on a laptop CPU. Uses real CLIP weights (RN50) when cached or downloadable, else a tiny random CLIP
# (or force it with --offline). Results: demo_output/results.md (table) and results.png (accuracy per method).
# A finished run is reused only for the same settings and backbone; other shots or backbone run anew.
#   bash scripts/demo.sh [--offline] [--output DIR] [--shots 16] [--backbone RN50] [--methods TaskRes ...]
#                        [--views 2] [--seed 1] [--input-size N]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" scripts/demo.py "$@"
