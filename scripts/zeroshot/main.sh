#!/usr/bin/env bash
# Zero-shot CLIP (TRAINER=ZeroshotCLIP2: ImageNet's template ensemble); one run serves every SHOTS.
#   DATA=/path/to/data bash scripts/zeroshot/main.sh DATASET SHOTS [KEY VALUE ...]   (variables: scripts/common.sh)
LAUNCHER_USAGE="$0" exec bash "$(dirname "$0")/../method/main.sh" "${TRAINER:-ZeroshotCLIP}" "$@"
