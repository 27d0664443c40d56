#!/usr/bin/env bash
# Evaluate finished TaskRes runs again, on their own test split or on other datasets.
#   DATA=/path bash scripts/taskres/eval.sh DATASET SHOTS [TARGET ...]
# e.g. bash scripts/taskres/eval.sh imagenet 16 imagenetv2 imagenet_sketch imagenet_a imagenet_r
# Reads $OUTPUT/DATASET/TaskRes/<backbone>_<SHOTS>shots[_enhanced]/seedS (as main.sh wrote them) and writes
# each result to <run>/eval_<TARGET>/ (metrics.json, log.txt). ImageNet-A/-R use their WordNet-id map to
# ImageNet's 1000 classes. Env as main.sh (SEEDS, BACKBONE, OUTPUT, ENHANCED_BASE to pick the TaskRes* runs).
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [TARGET ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=("$DATASET")
for target in "${TARGETS[@]}"; do check_dataset "$target"; done
TAG="$(backbone_tag "$BACKBONE")_${SHOTS}shots"; [ -n "${ENHANCED_BASE:-}" ] && TAG="${TAG}_enhanced"
SIZE=${INPUT_SIZE:-$(input_size "$BACKBONE")}

for seed in $SEEDS; do
  run="$OUTPUT/$DATASET/TaskRes/$TAG/seed$seed"
  [ -f "$run/metrics.json" ] || die "no finished run at $run; train it first with scripts/taskres/main.sh $DATASET $SHOTS"
  epoch=$(ls "$run/prompt_learner" | sed -n 's/^model\.pth\.tar-\([0-9]*\)$/\1/p' | sort -n | tail -1)
  [ -n "$epoch" ] || die "no checkpoint in $run/prompt_learner"
  for target in "${TARGETS[@]}"; do
    out="$run/eval_$target"
    if [ -f "$out/metrics.json" ]; then echo "[skip] $out"; continue; fi
    echo "[eval] seed $seed on $target -> $out"
    (cd "$REPO_ROOT" && "$PYTHON" train.py --root "$DATA" --seed "$seed" --trainer TaskRes \
      --config-file configs/trainers/TaskRes/rn50.yaml --dataset-config-file "configs/datasets/$target.yaml" \
      --output-dir "$out" --backbone "$BACKBONE" --cache-dir "$CACHE_DIR" --eval-only --model-dir "$run" \
      --load-epoch "$epoch" DATASET.NUM_SHOTS "$SHOTS" DATALOADER.TEST.BATCH_SIZE 1000 INPUT.SIZE "($SIZE, $SIZE)" \
      ${EXTRA_OPTS:-})
  done
done
for target in "${TARGETS[@]}"; do
  dirs=(); for seed in $SEEDS; do dirs+=("$OUTPUT/$DATASET/TaskRes/$TAG/seed$seed/eval_$target"); done
  echo "== $target"; summarize "${dirs[@]}"
done
