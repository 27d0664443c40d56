#!/usr/bin/env bash
# Linear-probe CLIP with the published recipe (C searched on the few-shot val split; nothing trained by SGD).
#   DATA=/path/to/data bash scripts/linear_probe/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/linear_probe/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

load_recipe LinearProbeCLIP "$DATASET" "$SHOTS"
run_seeds "$DATASET" LinearProbeCLIP "$(backbone_tag "$BACKBONE")_${SHOTS}shots" "$@"
