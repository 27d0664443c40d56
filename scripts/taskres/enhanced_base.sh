#!/usr/bin/env bash
# TaskRes* stage 1: tune CLIP's text projection on the few-shot data (50 epochs) and write enhanced bases.
#   DATA=/path bash scripts/taskres/enhanced_base.sh DATASET SHOTS [KEY VALUE ...]
# Writes $OUTPUT/DATASET/TaskResEnhancedBase/<backbone>_<SHOTS>shots/seedS/enhanced_base.pth.tar (one per seed:
# the few-shot data differ by seed), then prints the TaskRes* command that uses them.
# The original authors never released how their bases were made; this recipe (Adam, lr below, cosine,
# 50 epochs, the TaskRes templates) is ours. Env as main.sh; LR overrides the learning rate.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"
LR=${LR:-2e-5}
EPOCHS=${EPOCHS:-50}
TAG="$(backbone_tag "$BACKBONE")_${SHOTS}shots"
run_seeds TaskResEnhancedBase "$DATASET" "$SHOTS" "$TAG" --config-file configs/trainers/TaskRes/rn50.yaml \
  OPTIM.LR "$LR" OPTIM.MAX_EPOCH "$EPOCHS" "$@"
BASES="$OUTPUT/$DATASET/TaskResEnhancedBase/$TAG/seed{seed}/enhanced_base.pth.tar"
echo "Enhanced bases: $BASES"
echo "TaskRes*: ENHANCED_BASE='$BASES' DATA=$DATA bash scripts/taskres/main.sh $DATASET $SHOTS"
