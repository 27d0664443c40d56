#!/usr/bin/env bash
# Tip-Adapter (training-free) with its published recipe (declared in trainers/tip_adapter.py).
#   DATA=/path/to/data bash scripts/tip_adapter/main.sh DATASET SHOTS [KEY VALUE ...]   (variables: scripts/common.sh)
LAUNCHER_USAGE="$0" exec bash "$(dirname "$0")/../method/main.sh" TipAdapter "$@"
