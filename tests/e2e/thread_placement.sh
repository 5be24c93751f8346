#!/usr/bin/env bash
# The default thread placement under real mpirun (thread_placement.h), as a user types it, without
# OMP_NUM_THREADS: each computing rank takes the cores of the node over the computing ranks there
# (the parameter server is not counted), at least 1; rank 0 says so in one line, training.log lists
# every rank's OpenMP threads; a node whose ranks x threads exceed its cores gets one warning; a
# thread count that was asked for (OMP_NUM_THREADS, --num_threads) wins. unet_predict too.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BIN=$(pwd)/$BUILD/bin
fail() { echo "FAIL: $*"; exit 1; }
for b in unet_prepare unet_train unet_predict; do [ -x "$BIN/$b" ] || fail "$BIN/$b missing (make)"; done
command -v mpirun >/dev/null || { echo "SKIPPED: no mpirun"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/placement.XXXXXX"); trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# --bind-to none: every rank may use every core this shell may (nproc counts the affinity mask).
MPI=(env -u OMP_NUM_THREADS mpirun --oversubscribe --bind-to none -x OMP_WAIT_POLICY=passive)
C=$(nproc)
ARGS=(--dims 2 --input_size 32,32 --filters 8 --depth 2 --batch_size 4 --toy_samples 8 --epochs 1 --steps 2)
share() { local s=$(( $1 / $2 )); [ "$s" -ge 1 ] && echo "$s" || echo 1; }
log_threads() { sed -n 's/.*OpenMP threads per rank: //p' "$1/training.log"; }

# 1. a parameter server and two workers: the workers share the cores, the server takes what is left
W=$(share "$C" 2); S=$(( C - 2 * W )); [ "$S" -ge 1 ] || S=1
out=$("${MPI[@]}" -np 3 "$BIN/unet_train" "${ARGS[@]}" --logdir "$T/ps" 2>&1) || fail "ps run: $out"
want="threads: $W per rank ($C cores / 2 ranks on this node; not counted: the parameter server, which mostly sleeps ($S thread"
[ "$(grep -c '^threads: ' <<<"$out")" -eq 1 ] || fail "not one threads line: $out"
grep -qF "$want" <<<"$out" || fail "threads line: $(grep '^threads' <<<"$out"), expected: $want"
grep -q "set --num_threads to change" <<<"$out" || fail "the line does not name the flag"
[ "$(log_threads "$T/ps")" = "$S $W $W" ] || fail "ps: training.log threads '$(log_threads "$T/ps")', expected '$S $W $W'"
if [ $(( 2 * W )) -le "$C" ]; then grep -q "warning: " <<<"$out" && fail "ps: warning although the threads fit: $out"; fi

# 2. a lone worker next to its server gets every core
out=$("${MPI[@]}" -np 2 "$BIN/unet_train" "${ARGS[@]}" --logdir "$T/ps1" 2>&1) || fail "ps + 1 worker: $out"
grep -qF "threads: $C per rank ($C cores / 1 rank on this node" <<<"$out" || fail "ps + 1 worker: $(grep '^threads' <<<"$out")"
[ "$(log_threads "$T/ps1" | cut -d' ' -f2)" = "$C" ] || fail "ps + 1 worker: training.log threads '$(log_threads "$T/ps1")'"

# 3. all-reduce over 3 ranks: every rank counts; more ranks than cores warn (2 cores: 3 x 1 > 2)
A=$(share "$C" 3)
out=$("${MPI[@]}" -np 3 "$BIN/unet_train" "${ARGS[@]}" --sync allreduce --logdir "$T/ar" 2>&1) || fail "allreduce: $out"
grep -qF "threads: $A per rank ($C cores / 3 ranks on this node); set --num_threads to change" <<<"$out" ||
  fail "allreduce: $(grep '^threads' <<<"$out")"
[ "$(log_threads "$T/ar")" = "$A $A $A" ] || fail "allreduce: training.log threads '$(log_threads "$T/ar")'"
nwarn=$(grep -c "unet_train: warning: 3 ranks x $A thread" <<<"$out")
if [ $(( 3 * A )) -gt "$C" ]; then [ "$nwarn" -eq 1 ] || fail "allreduce: expected one warning: $out"
else [ "$nwarn" -eq 0 ] || fail "allreduce: warning although the threads fit: $out"; fi

# 4. OMP_NUM_THREADS set (as -x passes it): it wins, no threads line; beyond the cores, one warning
O=$(( C + 2 ))
out=$("${MPI[@]}" -np 2 -x OMP_NUM_THREADS=$O "$BIN/unet_train" "${ARGS[@]}" --sync allreduce --logdir "$T/omp" 2>&1) ||
  fail "OMP_NUM_THREADS=$O: $out"
grep -q '^threads: ' <<<"$out" && fail "a threads line although OMP_NUM_THREADS was set: $out"
[ "$(grep -c "unet_train: warning: 2 ranks x $O threads on $C cores of $(hostname)" <<<"$out")" -eq 1 ] ||
  fail "OMP_NUM_THREADS=$O on $C cores: expected one warning naming the host: $out"
grep -q -- "--num_threads $(share "$C" 2) (or OMP_NUM_THREADS=$(share "$C" 2)) fits" <<<"$out" || fail "the warning names no fitting count: $out"
[ "$(log_threads "$T/omp")" = "$O $O" ] || fail "OMP_NUM_THREADS=$O: training.log threads '$(log_threads "$T/omp")'"

# 5. --num_threads wins over OMP_NUM_THREADS and the default; 1 per rank fits: no line, no warning
out=$("${MPI[@]}" -np 2 -x OMP_NUM_THREADS=$O "$BIN/unet_train" "${ARGS[@]}" --sync allreduce --num_threads 1 \
      --logdir "$T/flag" 2>&1) || fail "--num_threads 1: $out"
grep -q '^threads: \|warning: ' <<<"$out" && [ "$C" -ge 2 ] && fail "--num_threads 1: $out"
[ "$(log_threads "$T/flag")" = "1 1" ] || fail "--num_threads 1: training.log threads '$(log_threads "$T/flag")'"

# 6. unet_predict under mpirun: every rank predicts, every rank counts
(cd "$T" && "$BIN/unet_prepare" --synthetic 4 --output_dir syn --synthetic_size 16,32,32 >/dev/null 2>&1 &&
  "$BIN/unet_prepare" --source_dir syn --output syn2d.h5 --mode 2d --slice_size 32 --split 0.5,0.25,0.25 >/dev/null 2>&1 &&
  OMP_NUM_THREADS=1 "$BIN/unet_train" --dims 2 --data syn2d.h5 --filters 8 --depth 2 --batch_size 4 --epochs 1 \
    --steps 1 --logdir run >/dev/null 2>&1) || fail "predict: preparing a model"
P=$(share "$C" 2)
out=$("${MPI[@]}" -np 2 "$BIN/unet_predict" --checkpoint "$T/run/checkpoint_latest.h5" --dataset "$T/syn2d.h5" \
      --split test --output_dir "$T/pred" 2>&1) || fail "unet_predict under mpirun: $out"
grep -qF "threads: $P per rank ($C cores / 2 ranks on this node); set --num_threads to change" <<<"$out" ||
  fail "unet_predict: $(grep '^threads' <<<"$out")"
echo "thread placement: ok ($C cores; ps $S+$W+$W, ps+1 $C, allreduce $A x 3, OMP_NUM_THREADS=$O warned, predict $P x 2)"
