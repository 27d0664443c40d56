#!/usr/bin/env bash
# TaskRes* stage 1: tune CLIP's text projection on the few-shot data (50 epochs) and write enhanced bases.
#   DATA=/path bash scripts/taskres/enhanced_base.sh DATASET SHOTS [KEY VALUE ...]
# Writes $OUTPUT/DATASET/TaskResEnhancedBase/<backbone>_<SHOTS>shots/seedS/enhanced_base.pth.tar (one per seed:
# the few-shot data differ by seed; a modified config gets a <tag>_<8 hex> folder), then prints the TaskRes*
# command that uses them. The original authors never released how their bases were made; this recipe (Adam,
# lr 2e-5, cosine, 50 epochs, the TaskRes templates; declared on TaskResEnhancedBase in trainers/taskres.py) is ours.
# Env as main.sh; LR (OPTIM.LR) and EPOCHS (OPTIM.MAX_EPOCH) override the learning rate and epochs.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

load_recipe TaskResEnhancedBase "$DATASET" "$SHOTS"
[ -n "${LR:-}" ] && LAUNCH_OPTS+=(OPTIM.LR "$LR")
run_seeds "$DATASET" TaskResEnhancedBase "$TAG" "$@"
BASES="$(dirname "${RUN_DIRS[0]}")/seed{seed}/enhanced_base.pth.tar"
echo "Enhanced bases: $BASES"
echo "TaskRes*: ENHANCED_BASE='$BASES' DATA=$DATA bash scripts/taskres/main.sh $DATASET $SHOTS"
