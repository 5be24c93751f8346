#!/usr/bin/env bash
# TensorBoard from PyPI in a virtual environment under the build directory: the tests read our
# event files with TensorBoard's own loaders, and it is how to look at runs without a system-wide
# install (build/tbvenv/bin/tensorboard --logdir runs/). Debian packages no TensorBoard.
# Idempotent: when the environment already imports tensorboard, nothing is installed.
#
#   scripts/tensorboard_venv.sh [BUILD_DIR]     prints the environment's python on stdout
set -euo pipefail
BUILD=${1:-build}
VENV=$BUILD/tbvenv
SPEC=${TENSORBOARD_SPEC:-tensorboard==2.21.*}

if ! "$VENV/bin/python" -c "import tensorboard" 2>/dev/null; then
  # Debian's interpreter (python3-venv); another python3 earlier on PATH may lack venv or pip.
  /usr/bin/python3 -m venv "$VENV" >&2
  echo "tensorboard_venv.sh: installing $SPEC into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SPEC" >&2
  "$VENV/bin/python" -c "import tensorboard" >&2
fi
echo "$VENV/bin/python"
