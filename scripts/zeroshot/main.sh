#!/usr/bin/env bash
# Zero-shot CLIP on a dataset's test split. Nothing is trained and no training image is used: the result is
# the same for every SHOTS (taken for the launchers' common loop), so one run per seed lands in
# <backbone>_zeroshot/seedS whatever SHOTS is, and another SHOTS reuses it; metrics.json records no epochs.
#   DATA=/path/to/data bash scripts/zeroshot/main.sh DATASET SHOTS [KEY VALUE ...]
# Env: TRAINER (ZeroshotCLIP: the dataset's template; ZeroshotCLIP2: + ImageNet's 7 select templates),
#      SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"
TRAINER=${TRAINER:-ZeroshotCLIP}
case "$TRAINER" in ZeroshotCLIP|ZeroshotCLIP2) ;; *) die "TRAINER must be ZeroshotCLIP or ZeroshotCLIP2, got '$TRAINER'" ;; esac

load_recipe "$TRAINER" "$DATASET" "$SHOTS"
run_seeds "$DATASET" "$TRAINER" "$(backbone_tag "$BACKBONE")_zeroshot" "$@"
