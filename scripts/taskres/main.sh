#!/usr/bin/env bash
# TaskRes / TaskRes* with the paper's recipe.
#   DATA=/path/to/data bash scripts/taskres/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/taskres/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output), EPOCHS (override), ENHANCED_BASE (file -> TaskRes*;
# "{seed}" in it is replaced per seed, e.g. ENHANCED_BASE=output/bases/imagenet_16shots_seed{seed}.pth.tar).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

# The recipe, in one place (paper, Sec. 4.1): lr 2e-3 (ImageNet 2e-4), alpha 0.5 (OxfordFlowers 1.0),
# 100 epochs for 1/2/4 shots and 200 for 8/16.
LR=2e-3; ALPHA=0.5
[ "$SHOTS" -le 4 ] && DEFAULT_EPOCHS=100 || DEFAULT_EPOCHS=200
case "$DATASET" in
  imagenet) LR=2e-4 ;;
  oxford_flowers) ALPHA=1.0 ;;
esac
EPOCHS=${EPOCHS:-$DEFAULT_EPOCHS}

TAG="$(backbone_tag "$BACKBONE")_${SHOTS}shots"
ARGS=(--config-file configs/trainers/TaskRes/rn50.yaml)
TRAINER_TAG=TaskRes
if [ -n "${ENHANCED_BASE:-}" ]; then
  for seed in $SEEDS; do
    [ -f "${ENHANCED_BASE//\{seed\}/$seed}" ] || die "ENHANCED_BASE file ${ENHANCED_BASE//\{seed\}/$seed} does not exist"
  done
  ARGS+=(--enhanced-base "$ENHANCED_BASE"); TAG="${TAG}_enhanced"
fi
run_seeds "$TRAINER_TAG" "$DATASET" "$SHOTS" "$TAG" "${ARGS[@]}" \
  OPTIM.LR "$LR" OPTIM.MAX_EPOCH "$EPOCHS" TRAINER.TaskRes.RESIDUAL_SCALE "$ALPHA" "$@"
