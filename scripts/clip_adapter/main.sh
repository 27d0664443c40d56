#!/usr/bin/env bash
# CLIP-Adapter with the published recipe (ratio 0.2, reduction 4; trained like CoOp: SGD lr 0.002,
# batch 32, cosine, 1 warm-up epoch).
#   DATA=/path/to/data bash scripts/clip_adapter/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/clip_adapter/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output), EPOCHS (override), RATIO (0.2).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"
RATIO=${RATIO:-0.2}

# The recipe, in one place (CoOp's schedule): 200 epochs for 8/16 shots, 100 for 2/4, 50 for 1 shot and ImageNet.
if [ "$SHOTS" -eq 1 ]; then DEFAULT_EPOCHS=50; elif [ "$SHOTS" -le 4 ]; then DEFAULT_EPOCHS=100; else DEFAULT_EPOCHS=200; fi
case "$DATASET" in
  imagenet) DEFAULT_EPOCHS=50 ;;
esac
EPOCHS=${EPOCHS:-$DEFAULT_EPOCHS}

TAG="$(backbone_tag "$BACKBONE")_${SHOTS}shots"
[ "$RATIO" != 0.2 ] && TAG="${TAG}_ratio${RATIO}"
run_seeds CLIP_Adapter "$DATASET" "$SHOTS" "$TAG" --config-file configs/trainers/CLIP_Adapter/rn50.yaml \
  OPTIM.MAX_EPOCH "$EPOCHS" TRAINER.CLIP_ADAPTER.RATIO "$RATIO" "$@"
