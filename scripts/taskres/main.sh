#!/usr/bin/env bash
# TaskRes / TaskRes* with the paper's recipe (declared on TaskRes in trainers/taskres.py: lr 2e-3, ImageNet 2e-4; alpha 0.5,
# OxfordFlowers 1.0; 100 epochs for 1/2/4 shots, 200 for 8/16).
#   DATA=/path/to/data bash scripts/taskres/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/taskres/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output), EPOCHS (OPTIM.MAX_EPOCH), ENHANCED_BASE (file -> TaskRes*;
# "{seed}" in it is replaced per seed, e.g. ENHANCED_BASE=output/bases/imagenet_16shots_seed{seed}.pth.tar).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

load_recipe TaskRes "$DATASET" "$SHOTS"
[ -n "${EPOCHS:-}" ] && LAUNCH_OPTS+=(OPTIM.MAX_EPOCH "$EPOCHS")
TAG="$(backbone_tag "$BACKBONE")_${SHOTS}shots"
if [ -n "${ENHANCED_BASE:-}" ]; then
  for seed in $SEEDS; do
    [ -f "${ENHANCED_BASE//\{seed\}/$seed}" ] || die "ENHANCED_BASE file ${ENHANCED_BASE//\{seed\}/$seed} does not exist"
  done
  FLAGS+=(--enhanced-base "$ENHANCED_BASE"); TAG="${TAG}_enhanced"
fi
run_seeds "$DATASET" TaskRes "$TAG" "$@"
