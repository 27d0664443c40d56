# Shared launcher logic, sourced by scripts/method/main.sh (every scripts/<method>/main.sh wraps it) and
# scripts/taskres/*.sh. Variables (every launcher):
#   DATA datasets root (required)   OUTPUT results root (output)   SEEDS ("1 2 3")   BACKBONE (RN50)
#   CACHE_DIR ($OUTPUT/feature_cache)   PYTHON (python)   INPUT_SIZE (the backbone's)   EPOCHS (the recipe's)
#   TRACK paper (default), fewshot_val or valfree   CLASSES all, base or new   EXTRA_OPTS KEY VALUE pairs
# Later words win: the recipe (python -m bookkeeping recipe METHOD DATASET SHOTS), these variables, EXTRA_OPTS,
# then the trailing KEY VALUE pairs. python -m bookkeeping plan names each run's folder and skips finished ones.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python}
BACKBONE=${BACKBONE:-RN50}
SEEDS=${SEEDS:-"1 2 3"}
FLAGS=(); LAUNCH_OPTS=(); RECIPE=()
export TASKRES_LAUNCHER=1  # train.py's messages then name these variables, not its flags

abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUTPUT=$(abspath "${OUTPUT:-output}")
CACHE_DIR=$(abspath "${CACHE_DIR:-$OUTPUT/feature_cache}")
[ -n "${DATA:-}" ] && DATA=$(abspath "$DATA")

die() { echo "error: $*" >&2; exit 2; }

require_data() {
  [ -n "${DATA:-}" ] || die "set DATA to the datasets root, e.g. DATA=/path/to/data bash $0 ... (see DATASETS.md)"
  [ -d "$DATA" ] || die "DATA=$DATA is not a folder (see DATASETS.md)"
}

check_dataset() {
  [ -f "$REPO_ROOT/configs/datasets/$1.yaml" ] || die "unknown dataset '$1'; valid: $(cd "$REPO_ROOT/configs/datasets" && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')"
}

check_shots() {
  [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] || die "SHOTS must be a positive integer (the paper uses 1 2 4 8 16), got '$1'"
}

# load_recipe METHOD DATASET SHOTS: the run folder's tag into TAG, the recipe's train.py arguments into RECIPE.
load_recipe() {
  local out
  out=$(cd "$REPO_ROOT" && "$PYTHON" -m bookkeeping recipe --argv "$1" "$2" "$3" --backbone "$BACKBONE" \
        --epochs "${EPOCHS:-}") || exit 2
  mapfile -t RECIPE <<< "$out"
  TAG=${RECIPE[0]}; RECIPE=("${RECIPE[@]:1}")
}

# launch_argv DATASET TRAINER TAG [KEY VALUE ...]: into ARGV, the train.py command line of every seed ("{seed}"
# stands for the seed), the caller's pairs last.
launch_argv() {
  local dataset=$1 trainer=$2 tag=$3; shift 3
  ARGV=(--root "$DATA" --seed "{seed}" --output-dir "$OUTPUT/$dataset/$trainer/$tag/seed{seed}" --cache-dir "$CACHE_DIR"
        --reuse "${FLAGS[@]}" "${RECIPE[@]}")
  [ -n "${INPUT_SIZE:-}" ] && ARGV+=(INPUT.SIZE "($INPUT_SIZE, $INPUT_SIZE)")
  [ -n "${TRACK:-}" ] && ARGV+=(DATASET.TRACK "$TRACK")
  [ -n "${CLASSES:-}" ] && ARGV+=(DATASET.SUBSAMPLE_CLASSES "$CLASSES")
  # shellcheck disable=SC2206  # EXTRA_OPTS is a word list by design
  ARGV+=("${LAUNCH_OPTS[@]}" ${EXTRA_OPTS:-} "$@")
}

# plan_seeds: per seed "STATE<TAB>FOLDER<TAB>NOTE" (STATE run or done) into PLAN; a conflict stops with one line.
plan_seeds() {
  local out
  out=$(cd "$REPO_ROOT" && "$PYTHON" -m bookkeeping plan --seeds "$SEEDS" -- "${ARGV[@]}") || exit 2
  mapfile -t PLAN <<< "$out"
}

# run_seeds DATASET TRAINER TAG [KEY VALUE ...]: one train.py per seed not finished yet, then the accuracies.
run_seeds() {
  launch_argv "$@"
  plan_seeds
  local line state dir note seed
  RUN_DIRS=()
  for line in "${PLAN[@]}"; do
    IFS=$'\t' read -r state dir note <<< "$line"
    seed=${dir##*/seed}
    RUN_DIRS+=("$dir")
    if [ "$state" = done ]; then echo "[skip] $dir (finished, same config)"; continue; fi
    (cd "$REPO_ROOT" && "$PYTHON" train.py "${ARGV[@]//\{seed\}/$seed}")
  done
  summarize "${RUN_DIRS[@]}"
}

# preflight TRAINER DATASET SHOTS: the dataset's folder and split file, the weights and the cache's disk need,
# checked before any work (each problem one line; scripts/reproduce/preflight.py).
preflight() {
  # shellcheck disable=SC2086  # SEEDS is a word list
  (cd "$REPO_ROOT" && "$PYTHON" -m scripts.reproduce.preflight --data "$DATA" --datasets "$2" --backbone "$BACKBONE" \
     --cache-dir "$CACHE_DIR" --output "$OUTPUT" --methods "$1" --shots "$3" --seeds $SEEDS) || exit 2
}

# launch TRAINER DATASET SHOTS [KEY VALUE ...]: the whole launcher.
launch() {
  [ $# -ge 3 ] || die "usage: DATA=/path bash ${LAUNCHER_USAGE:-$0 TRAINER} DATASET SHOTS [KEY VALUE ...]"
  local trainer=$1 dataset=$2 shots=$3; shift 3
  require_data; check_dataset "$dataset"; check_shots "$shots"
  preflight "$trainer" "$dataset" "$shots"
  load_recipe "$trainer" "$dataset" "$shots"
  run_seeds "$dataset" "$trainer" "$TAG" "$@"
}

# summarize DIR...: per-seed accuracy and mean from metrics.json.
summarize() {
  "$PYTHON" - "$@" <<'PY'
import json, os, statistics, sys
accs = []
for d in sys.argv[1:]:
    path = os.path.join(d, "metrics.json")
    if os.path.isfile(path):
        acc = json.load(open(path))["accuracy"]
        accs.append(acc)
        print(f"  {d}: {acc:.2f}%")
    else:
        print(f"  {d}: missing")
if accs:
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print(f"Results in {os.path.dirname(sys.argv[1])}: mean accuracy {statistics.mean(accs):.2f}% +- {sd:.2f} over {len(accs)} seed(s)")
PY
}
