#!/usr/bin/env bash
# The one-command launcher. Today: installs missing Debian packages, builds, and trains the quick
# profile (settings/quick.ini) on this machine, on generated data, in one process. The parameter
# server over MPI, Ansible hosts and Slurm arrive with their issues.
#   ./run_distributed_training.sh [--settings FILE] [extra unet_train flags...]
set -euo pipefail
cd "$(dirname "$0")"
SETTINGS=settings/quick.ini
if [ "${1:-}" = "--settings" ]; then SETTINGS=$2; shift 2; fi
scripts/install_deps.sh
make -j"$(nproc)" all >/dev/null
THREADS=${OMP_NUM_THREADS:-$(nproc)}
echo "training with $SETTINGS on $THREADS threads"
exec env OMP_NUM_THREADS="$THREADS" build/bin/unet_train --config "$SETTINGS" "$@"
