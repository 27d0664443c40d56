#!/usr/bin/env bash
# Any method with a declared recipe (recipe_config and recipe in its SPEC), e.g. ZS-LP, CLAP, or
# your own (TASKRES_METHODS=my_module on PYTHONPATH), with the same conventions as every launcher:
#   DATA=/path/to/data bash scripts/method/main.sh TRAINER DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/method/main.sh CLAP imagenet 16
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 3 ] || die "usage: DATA=/path bash $0 TRAINER DATASET SHOTS [KEY VALUE ...]"
TRAINER=$1; DATASET=$2; SHOTS=$3; shift 3
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

load_recipe "$TRAINER" "$DATASET" "$SHOTS"
run_seeds "$DATASET" "$TRAINER" "$(backbone_tag "$BACKBONE")_${SHOTS}shots" "$@"
