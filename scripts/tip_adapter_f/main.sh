#!/usr/bin/env bash
# Tip-Adapter-F with the published recipe (declared on TipAdapterF in trainers/tip_adapter.py: AdamW lr 1e-3, eps 1e-4, batch 256,
# 20 epochs, EuroSAT 100); epoch and alpha/beta chosen on val (the public code chooses on test).
#   DATA=/path/to/data bash scripts/tip_adapter_f/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/tip_adapter_f/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output), EPOCHS (OPTIM.MAX_EPOCH).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

load_recipe TipAdapterF "$DATASET" "$SHOTS"
[ -n "${EPOCHS:-}" ] && LAUNCH_OPTS+=(OPTIM.MAX_EPOCH "$EPOCHS")
run_seeds "$DATASET" TipAdapterF "$(backbone_tag "$BACKBONE")_${SHOTS}shots" "$@"
