#!/usr/bin/env bash
# Any method with a declared recipe, with the variables of scripts/common.sh (your own method too:
# TASKRES_METHODS=my_module on PYTHONPATH). Every scripts/<method>/main.sh is this with its TRAINER.
#   DATA=/path/to/data bash scripts/method/main.sh TRAINER DATASET SHOTS [KEY VALUE ...]
set -euo pipefail
source "$(dirname "$0")/../common.sh"
launch "$@"
