#!/usr/bin/env bash
# TaskRes with the paper's recipe (declared in trainers/taskres.py); TaskRes* with ENHANCED_BASE=FILE ("{seed}" in
# it is replaced per seed; see scripts/taskres/enhanced_base.sh). Variables: scripts/common.sh.
#   DATA=/path/to/data bash scripts/taskres/main.sh DATASET SHOTS [KEY VALUE ...]
set -euo pipefail
source "$(dirname "$0")/../common.sh"
if [ -n "${ENHANCED_BASE:-}" ]; then
  ENHANCED_BASE=$(abspath "$ENHANCED_BASE")
  for seed in $SEEDS; do
    [ -f "${ENHANCED_BASE//\{seed\}/$seed}" ] || die "ENHANCED_BASE file ${ENHANCED_BASE//\{seed\}/$seed} does not exist"
  done
  FLAGS+=(--enhanced-base "$ENHANCED_BASE")
fi
LAUNCHER_USAGE="$0" launch TaskRes "$@"
