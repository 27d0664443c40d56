#!/usr/bin/env bash
# Evaluate finished TaskRes runs again, on their own test split or on other datasets.
#   DATA=/path bash scripts/taskres/eval.sh DATASET SHOTS [TARGET ...]
# e.g. bash scripts/taskres/eval.sh imagenet 16 imagenetv2 imagenet_sketch imagenet_a imagenet_r
# Evaluates the runs scripts/taskres/main.sh DATASET SHOTS makes with the same environment (SEEDS, BACKBONE,
# OUTPUT, EPOCHS, INPUT_SIZE, EXTRA_OPTS, ENHANCED_BASE for the TaskRes* runs) and writes each result to
# <run>/eval_<TARGET>/ (metrics.json, log.txt); an evaluation already there with the same identity is reused.
# ImageNet-A/-R use their WordNet-id map to ImageNet's 1000 classes. Test batch 1000, as the original configs.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
[ $# -ge 2 ] || die "usage: DATA=/path bash $0 DATASET SHOTS [TARGET ...]"
DATASET=$1; SHOTS=$2; shift 2
require_data; check_dataset "$DATASET"; check_shots "$SHOTS"
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=("$DATASET")
for target in "${TARGETS[@]}"; do check_dataset "$target"; done

# The trained runs, found as main.sh names them.
load_recipe TaskRes "$DATASET" "$SHOTS"
[ -n "${ENHANCED_BASE:-}" ] && FLAGS+=(--enhanced-base "$(abspath "$ENHANCED_BASE")")
launch_argv "$DATASET" TaskRes "$TAG"
plan_seeds
RUNS=()
for line in "${PLAN[@]}"; do
  IFS=$'\t' read -r state run note <<< "$line"
  [ "$state" = done ] || die "no finished run at $run; train it first with scripts/taskres/main.sh $DATASET $SHOTS (same environment)"
  RUNS+=("$run")
done

for target in "${TARGETS[@]}"; do
  load_recipe TaskRes "$target" "$SHOTS"
  for run in "${RUNS[@]}"; do
    seed=${run##*/seed}
    epoch=$(ls "$run/prompt_learner" | sed -n 's/^model\.pth\.tar-\([0-9]*\)$/\1/p' | sort -n | tail -1)
    [ -n "$epoch" ] || die "no checkpoint in $run/prompt_learner"
    args=(--root "$DATA" --seed "$seed" --output-dir "$run/eval_$target" --cache-dir "$CACHE_DIR" --reuse
          --eval-only --model-dir "$run" --load-epoch "$epoch" "${FLAGS[@]//\{seed\}/$seed}" "${RECIPE[@]}"
          DATALOADER.TEST.BATCH_SIZE 1000)
    [ -n "${INPUT_SIZE:-}" ] && args+=(INPUT.SIZE "($INPUT_SIZE, $INPUT_SIZE)")
    # shellcheck disable=SC2206
    args+=(${EXTRA_OPTS:-})
    (cd "$REPO_ROOT" && "$PYTHON" train.py "${args[@]}")
  done
done
for target in "${TARGETS[@]}"; do
  dirs=(); for run in "${RUNS[@]}"; do dirs+=("$run/eval_$target"); done
  echo "== $target"; summarize "${dirs[@]}"
done
