#!/usr/bin/env bash
# Zero-shot CLIP on a dataset's test split (nothing is trained; the seed only fixes the data reading).
#   DATA=/path/to/data bash scripts/zeroshot/main.sh DATASET [KEY VALUE ...]
# Env: TRAINER (ZeroshotCLIP: the dataset's template; ZeroshotCLIP2: + ImageNet's 7 select templates),
#      BACKBONE (RN50), OUTPUT (output), SEEDS (default "1").
set -euo pipefail
SEEDS=${SEEDS:-1}
source "$(dirname "$0")/../common.sh"
[ $# -ge 1 ] || die "usage: DATA=/path bash $0 DATASET [KEY VALUE ...]"
DATASET=$1; shift
require_data; check_dataset "$DATASET"
TRAINER=${TRAINER:-ZeroshotCLIP}
run_seeds "$TRAINER" "$DATASET" 1 "$(backbone_tag "$BACKBONE")_zeroshot" \
  --config-file configs/trainers/TaskRes/rn50.yaml "$@"
