#!/usr/bin/env bash
# CoOp with the published recipe (declared on CoOp in trainers/coop.py: SGD lr 0.002, batch 32, cosine, 1 warm-up epoch,
# 16 context tokens at the front, class token at the end, random init; 50 epochs for 1 shot and ImageNet,
# 100 for 2/4 shots, 200 for 8/16; last-epoch model).
#   DATA=/path/to/data bash scripts/coop/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/coop/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output), EPOCHS (OPTIM.MAX_EPOCH), NCTX (TRAINER.COOP.N_CTX),
#      CSC (TRAINER.COOP.CSC: True for class-specific context), CTP (TRAINER.COOP.CLASS_TOKEN_POSITION: end, middle,
#      front), CTX_INIT (TRAINER.COOP.CTX_INIT, e.g. "a photo of a"). Unset: the recipe's value.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"

load_recipe CoOp "$DATASET" "$SHOTS"
[ -n "${EPOCHS:-}" ] && LAUNCH_OPTS+=(OPTIM.MAX_EPOCH "$EPOCHS")
[ -n "${NCTX:-}" ] && LAUNCH_OPTS+=(TRAINER.COOP.N_CTX "$NCTX")
[ -n "${CSC:-}" ] && LAUNCH_OPTS+=(TRAINER.COOP.CSC "$CSC")
[ -n "${CTP:-}" ] && LAUNCH_OPTS+=(TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP")
[ -n "${CTX_INIT:-}" ] && LAUNCH_OPTS+=(TRAINER.COOP.CTX_INIT "$CTX_INIT")
run_seeds "$DATASET" CoOp "$(backbone_tag "$BACKBONE")_${SHOTS}shots" "$@"
