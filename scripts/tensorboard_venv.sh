#!/usr/bin/env bash
# TensorBoard from PyPI in a virtual environment under the build directory: the tests read our
# event files with TensorBoard's own loaders, and it is how to look at runs without a system-wide
# install (build/tbvenv/bin/tensorboard --logdir runs/). Debian packages no TensorBoard.
# Idempotent: when the environment already imports tensorboard, nothing is installed.
#
#   scripts/tensorboard_venv.sh [BUILD_DIR]     prints the environment's python on stdout
set -euo pipefail
BUILD=${1:-build}
SPEC=${TENSORBOARD_SPEC:-tensorboard==2.21.*}
mkdir -p "$BUILD"
# The real path, not the one a caller reached it by (a test sandbox links build/ from a temporary
# folder): pip writes this path into the first line of every script it installs.
VENV=$(realpath "$BUILD")/tbvenv

if ! "$VENV/bin/python" -c "import tensorboard" 2>/dev/null; then
  # Debian's interpreter (python3-venv); another python3 earlier on PATH may lack venv or pip.
  /usr/bin/python3 -m venv "$VENV" >&2
  echo "tensorboard_venv.sh: installing $SPEC into $VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SPEC" >&2
  "$VENV/bin/python" -c "import tensorboard" >&2
fi
# An environment made through another path (a moved checkout, or one made before the line above)
# has scripts whose first line names an interpreter that is gone: point them at this one.
for script in "$VENV"/bin/*; do
  [ -f "$script" ] && [ ! -L "$script" ] || continue
  first=$(head -c 256 "$script" | head -n 1)
  case "$first" in
    '#!'*python*) interpreter=${first#\#!}
                  [ -x "$interpreter" ] || sed -i "1s|.*|#!$VENV/bin/python|" "$script" ;;
  esac
done
echo "$VENV/bin/python"
