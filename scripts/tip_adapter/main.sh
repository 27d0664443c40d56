#!/usr/bin/env bash
# Tip-Adapter (training-free) with the published recipe: augmented views per cache key, alpha/beta searched on
# val (never on test).
#   DATA=/path/to/data bash scripts/tip_adapter/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/tip_adapter/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

load_recipe TipAdapter "$DATASET" "$SHOTS"
run_seeds "$DATASET" TipAdapter "$(backbone_tag "$BACKBONE")_${SHOTS}shots" "$@"
