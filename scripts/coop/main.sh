#!/usr/bin/env bash
# CoOp with the published recipe (SGD lr 0.002, batch 32, cosine, 1 warm-up epoch, last-epoch model).
#   DATA=/path/to/data bash scripts/coop/main.sh DATASET SHOTS [KEY VALUE ...]
# e.g. bash scripts/coop/main.sh imagenet 16
# Env: SEEDS ("1 2 3"), BACKBONE (RN50), OUTPUT (output), EPOCHS (override),
#      NCTX (16), CSC (False), CTP (class token position: end), CTX_INIT ("": random; e.g. "a photo of a").
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [KEY VALUE ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"
NCTX=${NCTX:-16}; CSC=${CSC:-False}; CTP=${CTP:-end}; CTX_INIT=${CTX_INIT:-}

# The recipe, in one place: 200 epochs for 8/16 shots, 100 for 2/4, 50 for 1 shot and for ImageNet.
if [ "$SHOTS" -eq 1 ]; then DEFAULT_EPOCHS=50; elif [ "$SHOTS" -le 4 ]; then DEFAULT_EPOCHS=100; else DEFAULT_EPOCHS=200; fi
case "$DATASET" in
  imagenet) DEFAULT_EPOCHS=50 ;;
esac
EPOCHS=${EPOCHS:-$DEFAULT_EPOCHS}

TAG="$(backbone_tag "$BACKBONE")_${SHOTS}shots"
# Non-default prompt options get their own folder (CoOp's nctx/csc/ctp naming).
if [ "$NCTX" != 16 ] || [ "$CSC" != False ] || [ "$CTP" != end ]; then TAG="${TAG}_nctx${NCTX}_csc${CSC}_ctp${CTP}"; fi
[ -n "$CTX_INIT" ] && TAG="${TAG}_init_$(echo "$CTX_INIT" | tr ' ' '_')"

run_seeds CoOp "$DATASET" "$SHOTS" "$TAG" --config-file configs/trainers/CoOp/rn50.yaml \
  OPTIM.MAX_EPOCH "$EPOCHS" TRAINER.COOP.N_CTX "$NCTX" TRAINER.COOP.CSC "$CSC" \
  TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP" TRAINER.COOP.CTX_INIT "$CTX_INIT" "$@"
