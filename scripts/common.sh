# Shared launcher logic, sourced by scripts/<method>/main.sh. Conventions (every method):
#   bash scripts/<method>/main.sh DATASET SHOTS [KEY VALUE ...]
#   DATA     datasets root (required)            OUTPUT    results root (default: output)
#   SEEDS    seeds to run (default: "1 2 3")      BACKBONE  CLIP backbone (default: RN50)
#   CACHE_DIR feature cache (default: $OUTPUT/feature_cache)   PYTHON  interpreter (default: python)
#   INPUT_SIZE image side (default: the backbone's)   EXTRA_OPTS  KEY VALUE pairs applied last
# A run whose metrics.json exists is skipped; trailing KEY VALUE pairs override the recipe.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python}
BACKBONE=${BACKBONE:-RN50}
SEEDS=${SEEDS:-"1 2 3"}

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

# input_size BACKBONE: the image side the backbone was trained at.
input_size() {
  case "$1" in
    RN50x4) echo 288 ;; RN50x16) echo 384 ;; RN50x64) echo 448 ;; ViT-L/14@336px) echo 336 ;; *) echo 224 ;;
  esac
}

# backbone_tag BACKBONE: a folder-safe name (ViT-B/16 -> vit_b16, RN50 -> rn50, /path/RN50.pt -> rn50).
backbone_tag() {
  local b=$1
  if [ -f "$b" ] || [[ "$b" == *.pt || "$b" == *.pth ]]; then b=$(basename "$b"); b=${b%.pth}; b=${b%.pt}; fi
  echo "$b" | tr '[:upper:]' '[:lower:]' | sed 's#/##g; s#[:@-]#_#g; s#_\+#_#g'
}

# run_seeds TRAINER DATASET SHOTS TAG [train.py args and KEY VALUE overrides...]
# Runs one train.py per seed into $OUTPUT/DATASET/TRAINER/TAG/seedS, skipping finished ones.
# "{seed}" inside an argument is replaced by the seed (e.g. a per-seed enhanced-base file).
run_seeds() {
  local trainer=$1 dataset=$2 shots=$3 tag=$4; shift 4
  local size; size=${INPUT_SIZE:-$(input_size "$BACKBONE")}
  local dirs=()
  for seed in $SEEDS; do
    local dir="$OUTPUT/$dataset/$trainer/$tag/seed$seed"
    dirs+=("$dir")
    if [ -f "$dir/metrics.json" ]; then
      echo "[skip] $dir (finished: metrics.json exists)"
      continue
    fi
    echo "[run] $trainer $dataset ${shots}-shot seed $seed -> $dir"
    (cd "$REPO_ROOT" && "$PYTHON" train.py --root "$DATA" --seed "$seed" --trainer "$trainer" \
      --dataset-config-file "configs/datasets/$dataset.yaml" --output-dir "$dir" --backbone "$BACKBONE" \
      --cache-dir "$CACHE_DIR" "${@//\{seed\}/$seed}" DATASET.NUM_SHOTS "$shots" INPUT.SIZE "($size, $size)" ${EXTRA_OPTS:-})
  done
  summarize "${dirs[@]}"
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
