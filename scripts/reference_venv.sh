#!/usr/bin/env bash
# The independent reference libraries the tests compare us against, in one virtual environment
# under the build directory: MONAI 1.3.2 from PyPI (HD95 / Dice in monai.metrics,
# sliding_window_inference in monai.inferers) on top of Debian's python3-torch, python3-numpy and
# python3-scipy. Debian packages no MONAI; --system-site-packages lets the venv use Debian's torch
# 1.13 (MONAI 1.3.2 supports it), and --no-deps keeps pip from pulling a second, 2 GB torch.
# Idempotent: when the environment already imports everything at the pinned versions, nothing is
# installed.
#
#   scripts/reference_venv.sh [BUILD_DIR]     prints the environment's python on stdout
# Exit 1, with the reason on stderr, when it cannot be built (no python3-torch, PyPI unreachable).
set -euo pipefail
BUILD=${1:-build}
VENV=$BUILD/refvenv
MONAI_SPEC=${MONAI_SPEC:-monai==1.3.2}
MONAI_VERSION=${MONAI_SPEC#monai==}
CHECK="import torch, numpy, scipy.ndimage, monai, monai.metrics, monai.inferers
assert monai.__version__ == '$MONAI_VERSION', monai.__version__"

if ! "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  # Debian's interpreter: it is the one that sees python3-torch; another python3 earlier on PATH may
  # lack venv, pip or torch.
  if ! /usr/bin/python3 -c 'import torch, numpy, scipy, venv, ensurepip' 2>/dev/null; then
    scripts/install_deps.sh >&2 || true
    /usr/bin/python3 -c 'import torch, numpy, scipy, venv, ensurepip' >&2 ||
      { echo "reference_venv.sh: /usr/bin/python3 lacks torch, numpy, scipy or venv (python3-torch python3-scipy python3-venv)" >&2; exit 1; }
  fi
  [ -x "$VENV/bin/pip" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV" >&2
  echo "reference_venv.sh: installing $MONAI_SPEC into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "$MONAI_SPEC" >&2
  "$VENV/bin/python" -c "$CHECK" >&2
fi
echo "$VENV/bin/python"
