#!/usr/bin/env bash
# Linear-probe CLIP with its published recipe (declared in trainers/linear_probe.py).
#   DATA=/path/to/data bash scripts/linear_probe/main.sh DATASET SHOTS [KEY VALUE ...]   (variables: scripts/common.sh)
LAUNCHER_USAGE="$0" exec bash "$(dirname "$0")/../method/main.sh" LinearProbeCLIP "$@"
