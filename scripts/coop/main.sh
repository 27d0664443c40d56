#!/usr/bin/env bash
# CoOp with its published recipe (declared in trainers/coop.py).
#   DATA=/path/to/data bash scripts/coop/main.sh DATASET SHOTS [KEY VALUE ...]   (variables: scripts/common.sh)
LAUNCHER_USAGE="$0" exec bash "$(dirname "$0")/../method/main.sh" CoOp "$@"
