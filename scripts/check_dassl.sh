#!/usr/bin/env bash
# Check this project inside a real Dassl: every trainer trains, evaluates (--eval-only) and resumes with
# the same results under TASKRES_ENGINE=dassl and TASKRES_ENGINE=builtin, and the launchers run.
#   bash scripts/check_dassl.sh /path/to/Dassl.pytorch
# Env: TORCH (2.1.2) and TORCHVISION (0.16.2): the torch to check with (Dassl's last commit trains on 2.1.2);
#      VENV (a new temporary one): reuse a folder to skip the installs on a second run;
#      PYTHON_BIN (python3): the interpreter the venv is made from.
# Extra arguments go to scripts/check_dassl.py (e.g. --epochs 4, --skip launchers).
set -euo pipefail
DASSL=${1:?usage: bash scripts/check_dassl.sh /path/to/Dassl.pytorch [check_dassl.py options]}
shift
DASSL=$(cd "$DASSL" && pwd)
[ -f "$DASSL/dassl/__init__.py" ] || { echo "error: $DASSL is not a Dassl.pytorch checkout (no dassl/__init__.py)" >&2; exit 2; }
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH=${TORCH:-2.1.2}
TORCHVISION=${TORCHVISION:-0.16.2}
VENV=${VENV:-$(mktemp -d)/venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating $VENV (torch $TORCH, Dassl from $DASSL)"
  "${PYTHON_BIN:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
  # torch < 2.3 is built against numpy 1.x; pandas (imported by Dassl through wilds) must match it.
  CONSTRAINTS="$VENV/constraints.txt"
  case "$TORCH" in 2.[0-2].*) printf 'numpy<2\npandas<2.3\n' > "$CONSTRAINTS" ;; *) : > "$CONSTRAINTS" ;; esac
  "$VENV/bin/pip" install -q -c "$CONSTRAINTS" "torch==$TORCH" "torchvision==$TORCHVISION"
  "$VENV/bin/pip" install -q -c "$CONSTRAINTS" -r "$DASSL/requirements.txt"
  # Dassl's setup.py imports numpy, so it is installed without build isolation.
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$DASSL"
  "$VENV/bin/pip" install -q -c "$CONSTRAINTS" -e "$REPO[test]"
fi
"$VENV/bin/python" -c "import dassl, torch; print(f'Dassl {dassl.__version__} ({dassl.__file__}), torch {torch.__version__}')"
cd "$REPO"
"$VENV/bin/python" scripts/check_dassl.py "$@"
