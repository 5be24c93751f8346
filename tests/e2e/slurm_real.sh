#!/usr/bin/env bash
# scripts/slurm/unet_train.sbatch on a real one-node Slurm: munged, slurmctld and slurmd started
# here as root with a private configuration, key, state and ports in a temporary directory (no
# system configuration touched), all stopped at the end. Checks a 2-rank job (a parameter server
# and a worker launched by srun --mpi=pmix), and the time-limit protocol: SIGTERM to the batch
# script (what --signal=B:TERM@300 delivers; sent here with scancel --batch instead of waiting
# for a time limit) -> checkpoint -> scontrol requeue -> the requeued job resumes and finishes.
# Slurm holds a requeued job about 2 minutes before it may start again; the test lifts that
# with scontrol update StartTime=now.
# Needs Debian's slurmctld, slurmd, slurm-client and munge (not in scripts/install_deps.sh: on a
# systemd machine they install system services); without them it says so and passes, and
# tests/e2e/slurm_scripts.sh still checks the scripts with stand-ins.
set -u
for b in munged mungekey slurmctld slurmd sbatch scontrol squeue; do
  command -v $b >/dev/null || { echo "SKIPPED: $b not installed (apt-get install slurmctld slurmd slurm-client munge)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "SKIPPED: starting slurmd needs root"; exit 77; }
T=$(mktemp -d)
chmod 700 "$T"
export SLURM_CONF=$T/slurm.conf OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
stop() {
  for id in $(squeue -h -o %i 2>/dev/null); do scancel "$id"; done
  for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  kill $(jobs -p) 2>/dev/null; wait
  rm -rf "$T"
}
trap stop EXIT
fail() { echo "FAIL: $*"; for f in "$T"/*.out "$T/slurmctld.log" "$T/slurmd.log"; do [ -f "$f" ] && { echo "== $f"; tail -6 "$f"; }; done; exit 1; }

port=$((20000 + ($$ % 5000) * 2))
node=$(hostname -s)
mungekey --create --keyfile="$T/munge.key" || fail "mungekey"
# The daemons run in the foreground as children of this script, which reaps them when they stop.
munged --foreground --force --socket="$T/munge.sock" --key-file="$T/munge.key" --pid-file="$T/munged.pid" \
  --log-file="$T/munged.log" --seed-file="$T/munged.seed" > "$T/munged.stderr" 2>&1 &
for _ in $(seq 50); do [ -S "$T/munge.sock" ] && break; sleep 0.1; done
cat > "$SLURM_CONF" <<CONF
ClusterName=unettest
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$T/munge.sock
CredType=cred/munge
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
mkdir -p "$T/state" "$T/spool"
slurmctld -D -i > "$T/slurmctld.stderr" 2>&1 &
slurmd -D > "$T/slurmd.stderr" 2>&1 &
for _ in $(seq 100); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 0.2; done
sinfo -h -o %t | grep -q idle || fail "the node did not come up"
job=(--nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=10)

# 1. a job that ends by itself: 2 ranks over srun
UNET_LOGDIR=$T/run1 UNET_SETTINGS=settings/quick.ini timeout 300 sbatch --wait "${job[@]}" --output="$T/1.out" \
  scripts/slurm/unet_train.sbatch --input_size 32,32 --filters 4 --depth 2 --batch_size 4 --toy_samples 16 --epochs 1 \
  >/dev/null || fail "job 1 failed"
grep -q "2 ranks (rank 0 parameter server)" "$T/run1/training.log" 2>/dev/null || fail "job 1: not one 2-rank MPI job"
grep -q "done: 4 steps" "$T/run1/training.log" || fail "job 1 did not finish"

# 2. the time-limit protocol
id=$(UNET_LOGDIR=$T/run2 UNET_SETTINGS=settings/quick.ini sbatch --parsable "${job[@]}" --output="$T/2.out" \
  scripts/slurm/unet_train.sbatch --toy_samples 64 --print_every 1 --steps 40 --epochs 100) || fail "sbatch job 2"
for _ in $(seq 300); do grep -q "step 3 " "$T/run2/training.log" 2>/dev/null && break; sleep 0.2; done
grep -q "step 3 " "$T/run2/training.log" 2>/dev/null || fail "job 2 did not start training"
scancel --signal=TERM --batch "$id" || fail "scancel"
for _ in $(seq 150); do scontrol show job "$id" | grep -q "Restarts=1" && squeue -h -j "$id" -o %T | grep -q PENDING && break; sleep 0.2; done
scontrol show job "$id" | grep -q "Restarts=1" || fail "job 2 was not requeued"
grep -q "stopped by signal 15 at step" "$T/run2/training.log" || fail "job 2 did not checkpoint and stop"
# slurmd refuses a credential issued in the second its predecessor was revoked: wait until the
# node is idle again and a little more before lifting the delay.
for _ in $(seq 100); do sinfo -h -o %t | grep -q idle && break; sleep 0.2; done
sleep 2
scontrol update JobId="$id" StartTime=now || fail "scontrol update StartTime"
for _ in $(seq 600); do [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && break; sleep 0.2; done
stopped=$(sed -n 's/.*stopped by signal 15 at step \([0-9]*\).*/\1/p' "$T/run2/training.log")
grep -q "resumed from $T/run2/checkpoint_latest.h5 at step $stopped " "$T/run2/training.log" || fail "the requeued job did not resume"
grep -q "done: 40 steps" "$T/run2/training.log" || fail "the requeued job did not finish"
echo "real Slurm: 2-rank job, SIGTERM at step $stopped -> checkpoint -> requeue -> resumed -> done: ok"
