#!/usr/bin/env bash
# TEMPORARY stand-in until the metrics branch lands its reference_venv.sh.
set -eu
V=${1:-build/refvenv}
"$V/bin/python" -c "import monai" 2>/dev/null && exit 0
/usr/bin/python3 -m venv --system-site-packages "$V"
"$V/bin/pip" install -q --no-deps monai==1.3.2
