#!/usr/bin/env bash
# Screenshots of TensorBoard's Scalars and Images pages for the README, with headless Chromium
# (Debian: apt-get install chromium). Serves LOGDIR with the TensorBoard of build/tbvenv.
#   scripts/tensorboard_screenshots.sh [LOGDIR] [OUT_DIR]     (defaults: runs, docs)
set -euo pipefail
LOGDIR=${1:-runs}
OUT=${2:-docs}
command -v chromium >/dev/null || { echo "tensorboard_screenshots.sh: needs chromium (apt-get install chromium)" >&2; exit 1; }
PY=$(scripts/tensorboard_venv.sh build)
PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$PY" -m tensorboard.main --logdir "$LOGDIR" --host 127.0.0.1 --port "$PORT" >/dev/null 2>&1 &
TB_PID=$!
trap 'kill "$TB_PID" 2>/dev/null' EXIT
for _ in $(seq 30); do
  "$PY" -c "import urllib.request, sys; sys.exit(0 if b'train' in urllib.request.urlopen('http://127.0.0.1:$PORT/data/runs').read() else 1)" \
    2>/dev/null && break
  sleep 1
done
mkdir -p "$OUT"
shot() {  # URL fragment, file
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,1050 \
    --virtual-time-budget=20000 --screenshot="$OUT/$2" "http://127.0.0.1:$PORT/#$1" 2>/dev/null
}
shot "scalars&tagFilter=%5E(train%7Cval)%2F(loss%7Cdice)&_ignoreYOutliers=false&_smoothingWeight=0" tensorboard_scalars.png  # ^(train|val)/(loss|dice), no smoothing, every point shown
shot images tensorboard_images.png
echo "wrote $OUT/tensorboard_scalars.png $OUT/tensorboard_images.png"
