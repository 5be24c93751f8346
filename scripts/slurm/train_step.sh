#!/usr/bin/env bash
# The body of scripts/slurm/*.sbatch, run in the project root inside the allocation: one srun
# step of unet_train over every task, and the time-limit protocol.
#   UNET_SETTINGS  settings file (default settings/unet2d.ini)
#   UNET_LOGDIR    run directory (default runs/slurm-<job id>: a requeued job finds its checkpoints)
#   UNET_SRUN_MPI  srun's --mpi plugin for Open MPI (default pmix)
# Arguments are passed to unet_train.
set -uo pipefail
PROGRAM=${SLURM_JOB_NAME:-unet_train}
: "${SLURM_JOB_ID:?not inside a Slurm job: submit with sbatch scripts/slurm/unet_train.sbatch}"
[ -x build/bin/unet_train ] || { echo "$PROGRAM: build/bin/unet_train missing: run make in $PWD first" >&2; exit 2; }

# srun does not inherit --cpus-per-task from sbatch since Slurm 22.05, so it is passed on
# explicitly; each rank runs one OpenMP thread per CPU it is given.
CPUS=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$CPUS
SETTINGS=${UNET_SETTINGS:-settings/unet2d.ini}
LOGDIR=${UNET_LOGDIR:-runs/slurm-$SLURM_JOB_ID}
mkdir -p "$LOGDIR"
echo "$PROGRAM: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}), ${SLURM_NTASKS:-1} ranks of $CPUS CPUs, run directory $LOGDIR"

# SIGTERM from --signal=B:TERM@N: pass it to the ranks (they checkpoint at the end of the step
# and exit 0), then requeue.
time_up=0
trap 'time_up=1; echo "$PROGRAM: time limit near: checkpointing"; scancel --signal=TERM "$SLURM_JOB_ID"' TERM

srun --cpus-per-task="$CPUS" --cpu-bind=cores --mpi="${UNET_SRUN_MPI:-pmix}" \
  build/bin/unet_train --config "$SETTINGS" --logdir "$LOGDIR" --resume auto "$@" &
step=$!
rc=0; wait "$step" || rc=$?
while kill -0 "$step" 2>/dev/null; do rc=0; wait "$step" || rc=$?; done   # the trap interrupts wait

if [ "$time_up" -eq 1 ]; then
  echo "$PROGRAM: requeueing job $SLURM_JOB_ID; it continues from $LOGDIR/checkpoint_latest.h5"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
exit "$rc"
