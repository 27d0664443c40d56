#!/usr/bin/env bash
# CLIP-Adapter with its published recipe (declared in trainers/clip_adapter.py).
#   DATA=/path/to/data bash scripts/clip_adapter/main.sh DATASET SHOTS [KEY VALUE ...]   (variables: scripts/common.sh)
LAUNCHER_USAGE="$0" exec bash "$(dirname "$0")/../method/main.sh" CLIP_Adapter "$@"
