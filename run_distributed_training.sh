#!/usr/bin/env bash
# The one-command launcher. Today it runs on this machine, in one process: installs missing
# Debian packages, builds, creates the synthetic MSD dataset under data/ if it is absent, prepares
# it as 2D slices, and trains settings/quick.ini on it, writing runs/<date-time>/. The parameter
# server over MPI, Ansible hosts and Slurm arrive with their issues.
#   ./run_distributed_training.sh [--settings FILE] [--data FILE.h5] [extra unet_train flags...]
set -euo pipefail
cd "$(dirname "$0")"
SETTINGS=settings/quick.ini
DATA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --settings) SETTINGS=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    *) break ;;
  esac
done
scripts/install_deps.sh
make -j"$(nproc)" all >/dev/null
if [ -z "$DATA" ]; then
  DATA=data/synthetic2d.h5
  if [ ! -f "$DATA" ]; then
    echo "creating the synthetic MSD dataset in data/synthetic (no download needed)"
    build/bin/unet_prepare --synthetic 24 --output_dir data/synthetic --synthetic_size 96,96,64
    build/bin/unet_prepare --source_dir data/synthetic --output "$DATA" --mode 2d --slice_size 64
  fi
fi
THREADS=${OMP_NUM_THREADS:-$(nproc)}
RUN=runs/$(date +%Y%m%d-%H%M%S)
echo "training $SETTINGS on $DATA with $THREADS threads; results in $RUN"
env OMP_NUM_THREADS="$THREADS" build/bin/unet_train --config "$SETTINGS" --data "$DATA" --logdir "$RUN" "$@"
echo "results: $RUN (training.log, checkpoint_best.h5, checkpoint_latest.h5)"
