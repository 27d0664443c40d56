# Shared launcher logic, sourced by scripts/<method>/main.sh. Conventions (every method):
#   bash scripts/<method>/main.sh DATASET SHOTS [KEY VALUE ...]
#   DATA     datasets root (required)            OUTPUT    results root (default: output)
#   SEEDS    seeds to run (default: "1 2 3")      BACKBONE  CLIP backbone (default: RN50)
#   CACHE_DIR feature cache (default: $OUTPUT/feature_cache)   PYTHON  interpreter (default: python)
#   INPUT_SIZE image side (default: the backbone's)   EXTRA_OPTS  KEY VALUE pairs (before the trailing ones)
#   TRACK    selection track: paper (default), fewshot_val or valfree    CLASSES  all (default), base or new
# The recipe is declared on the method's trainer class (SPEC: recipe_config, recipe; read by scripts/reproduce/recipes.py);
# launcher variables, EXTRA_OPTS and then the trailing KEY VALUE pairs override it, in that order (the last word wins).
# A run whose config differs from the recipe goes to <tag>_<8 hex>/seedS; a finished run with the same config is
# skipped (see scripts/reproduce/runs.py); train.py holds a lock on each run folder.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python}
BACKBONE=${BACKBONE:-RN50}
SEEDS=${SEEDS:-"1 2 3"}
FLAGS=(); LAUNCH_OPTS=(); RECIPE=()

# Absolute paths first: the launcher runs from the repository root.
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUTPUT=$(abspath "${OUTPUT:-output}")
CACHE_DIR=$(abspath "${CACHE_DIR:-$OUTPUT/feature_cache}")
[ -n "${DATA:-}" ] && DATA=$(abspath "$DATA")
[ -n "${ENHANCED_BASE:-}" ] && ENHANCED_BASE=$(abspath "$ENHANCED_BASE")

die() { echo "error: $*" >&2; exit 2; }

require_data() {
  [ -n "${DATA:-}" ] || die "set DATA to the datasets root, e.g. DATA=/path/to/data bash $0 ... (see DATASETS.md)"
  [ -d "$DATA" ] || die "DATA=$DATA is not a folder (see DATASETS.md)"
}

# check_dataset NAME: NAME must be a configs/datasets/NAME.yaml
check_dataset() {
  [ -f "$REPO_ROOT/configs/datasets/$1.yaml" ] || die "unknown dataset '$1'; valid: $(cd "$REPO_ROOT/configs/datasets" && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')"
}

check_shots() {
  [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] || die "SHOTS must be a positive integer (the paper uses 1 2 4 8 16), got '$1'"
}

# backbone_tag BACKBONE: a folder-safe name (ViT-B/16 -> vit_b16, RN50 -> rn50, /path/RN50.pt -> rn50).
backbone_tag() {
  local b=$1
  if [ -f "$b" ] || [[ "$b" == *.pt || "$b" == *.pth ]]; then b=$(basename "$b"); b=${b%.pth}; b=${b%.pt}; fi
  echo "$b" | tr '[:upper:]' '[:lower:]' | sed 's#/##g; s#[:@-]#_#g; s#_\+#_#g'
}

# load_recipe METHOD DATASET SHOTS: the recipe's train.py arguments (declared on its trainer class, read by scripts/reproduce/recipes.py) into RECIPE.
load_recipe() {
  local out
  out=$(cd "$REPO_ROOT" && "$PYTHON" -m scripts.reproduce.runs recipe "$1" "$2" "$3" --backbone "$BACKBONE") || exit 2
  mapfile -t RECIPE <<< "$out"
}

# launch_argv DATASET TRAINER TAG [KEY VALUE ...]: into ARGV, the train.py command line of every seed
# ("{seed}" stands for the seed): fixed flags, FLAGS, RECIPE, INPUT_SIZE, LAUNCH_OPTS, EXTRA_OPTS, then the
# caller's pairs, so the caller's pairs win over every launcher default.
launch_argv() {
  local dataset=$1 trainer=$2 tag=$3; shift 3
  ARGV=(--root "$DATA" --seed "{seed}" --output-dir "$OUTPUT/$dataset/$trainer/$tag/seed{seed}" --cache-dir "$CACHE_DIR"
        --reuse "${FLAGS[@]}" "${RECIPE[@]}")
  [ -n "${INPUT_SIZE:-}" ] && ARGV+=(INPUT.SIZE "($INPUT_SIZE, $INPUT_SIZE)")
  # The protocol (scripts/reproduce/grid.py): its runs get their own folders (<tag>_base, <tag>_valfree).
  [ -n "${TRACK:-}" ] && ARGV+=(DATASET.TRACK "$TRACK")
  [ -n "${CLASSES:-}" ] && ARGV+=(DATASET.SUBSAMPLE_CLASSES "$CLASSES")
  # shellcheck disable=SC2206  # EXTRA_OPTS is a word list by design
  ARGV+=("${LAUNCH_OPTS[@]}" ${EXTRA_OPTS:-} "$@")
}

# plan_seeds: for each seed, "STATE<TAB>FOLDER<TAB>NOTE" (STATE: run or done) into PLAN; stops with the planner's
# one-line reason when a folder holds a finished run with another config.
plan_seeds() {
  local out
  out=$(cd "$REPO_ROOT" && "$PYTHON" -m scripts.reproduce.runs plan --seeds "$SEEDS" -- "${ARGV[@]}") || exit 2
  mapfile -t PLAN <<< "$out"
}

# run_seeds DATASET TRAINER TAG [KEY VALUE ...]: one train.py per seed into $OUTPUT/DATASET/TRAINER/TAG[_<hex>]/seedS,
# skipping finished runs of the same config, then the per-seed and mean accuracy.
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
