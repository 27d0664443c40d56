#!/usr/bin/env bash
# CLIP-Adapter with the published recipe (declared on CLIP_Adapter in trainers/clip_adapter.py, with configs/trainers/CLIP_Adapter/rn50.yaml).
#   DATA=/path/to/data bash scripts/clip_adapter/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/clip_adapter/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output), EPOCHS (OPTIM.MAX_EPOCH),
#      RATIO (TRAINER.CLIP_ADAPTER.RATIO, the adapter's residual ratio). Unset: the recipe's value.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

load_recipe CLIP_Adapter "$DATASET" "$SHOTS"
[ -n "${EPOCHS:-}" ] && LAUNCH_OPTS+=(OPTIM.MAX_EPOCH "$EPOCHS")
[ -n "${RATIO:-}" ] && LAUNCH_OPTS+=(TRAINER.CLIP_ADAPTER.RATIO "$RATIO")
run_seeds "$DATASET" CLIP_Adapter "$(backbone_tag "$BACKBONE")_${SHOTS}shots" "$@"
