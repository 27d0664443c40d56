#!/usr/bin/env bash
# The device check (docs/gpu.md): every method, extraction, memory and resume on a synthetic ImageNet, in under 8 min.
cd "$(dirname "$0")/.." && exec timeout 540 "${PYTHON:-python}" benchmarks/gpu_check.py --device cuda "$@"
