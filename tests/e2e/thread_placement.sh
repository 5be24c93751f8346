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
T=$(mktemp -d "${TMPDIR:-/tmp}/placement.XXXXXX")
NS=(); NETNS_DIR_EXISTED=0; [ -d /run/netns ] && NETNS_DIR_EXISTED=1
cleanup() {  # the namespaces of part 7 (with every process in them), then the files
  local ns p
  for ns in "${NS[@]+"${NS[@]}"}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ "${#NS[@]}" -gt 0 ] && [ "$NETNS_DIR_EXISTED" -eq 0 ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    mountpoint -q /run/netns && umount /run/netns; rmdir /run/netns
  fi
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
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

# 7. across hosts (root only): 3 hosts, each a network and UTS namespace (Open MPI sees 3 nodes;
# mpirun starts the remote ranks through an agent that enters the host's namespaces instead of ssh),
# TCP only. The server alone on host 1, one worker on each of hosts 2 and 3: every node has one
# computing rank (or none), so each takes the node's cores. (The namespaces share this machine's
# CPUs but each sees all of them: that the 3 ranks then oversubscribe the real cores is invisible
# to them, as it would be to any program.) With more threads than cores, one warning per worker
# host, naming it; none from the server's host, whose rank is not counted.
across="skipped (needs root and ip netns)"
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && command -v unshare >/dev/null; then
  ID=pl$$; SUB=10.79.0
  BR=$ID-br; NS=("$BR")
  if ip netns add "$BR" 2>/dev/null && ip -n "$BR" link add br0 type bridge 2>/dev/null; then
    ip -n "$BR" link set br0 up
    for i in 1 2 3; do
      NS+=("$ID-$i"); ip netns add "$ID-$i" || fail "ip netns add $ID-$i"
      ip -n "$BR" link add "p$i" type veth peer name eth0 netns "$ID-$i" || fail "veth for host $i"
      ip -n "$BR" link set "p$i" master br0 up
      ip -n "$ID-$i" addr add "$SUB.$i/24" dev eth0 && ip -n "$ID-$i" link set eth0 up && ip -n "$ID-$i" link set lo up ||
        fail "address of host $i"
    done
    # NARROW3=1 (passed down from mpirun's environment): host 3's daemon and rank run on CPU 0 only
    printf '#!/bin/bash\nhost=$1; shift\npin=; [ -n "$NARROW3" ] && [ "${host##*.}" = 3 ] && pin="taskset -c 0"\nexec ip netns exec %s-${host##*.} unshare --uts /bin/sh -c "hostname plhost${host##*.}; exec $pin /bin/sh -c \\"\\$0\\"" "$*"\n' "$ID" > "$T/agent"
    chmod +x "$T/agent"
    printf '%s slots=1\n' "$SUB.1" "$SUB.2" "$SUB.3" > "$T/hostfile"
    H1=(ip netns exec "$ID-1" unshare --uts /bin/sh -c 'hostname plhost1; exec "$@"' sh)
    XMPI=(env -u OMP_NUM_THREADS mpirun --hostfile "$T/hostfile" --map-by node --bind-to none --mca plm_rsh_agent "$T/agent"
          --mca plm_rsh_no_tree_spawn 1 --mca btl tcp,self --mca btl_tcp_if_include "$SUB.0/24"
          --mca oob_tcp_if_include "$SUB.0/24" -x OMP_WAIT_POLICY=passive)
    out=$(timeout 120 "${H1[@]}" "${XMPI[@]}" -np 3 "$BIN/unet_train" "${ARGS[@]}" --logdir "$T/hosts" 2>&1) ||
      fail "across hosts: $out"
    grep -q "hosts: rank 0 on plhost1, rank 1 on plhost2, rank 2 on plhost3$" "$T/hosts/training.log" ||
      fail "across hosts: not one rank per host: $(grep 'hosts:' "$T/hosts/training.log")"
    grep -qxF "threads: $C per rank ($C cores / 1 rank on this node); set --num_threads to change" <<<"$out" ||
      fail "across hosts: $(grep '^threads' <<<"$out")"
    [ "$(log_threads "$T/hosts")" = "$C $C $C" ] || fail "across hosts: training.log threads '$(log_threads "$T/hosts")'"
    grep -q "warning: " <<<"$out" && fail "across hosts: a warning although each node's threads fit: $out"
    out=$(timeout 120 "${H1[@]}" "${XMPI[@]}" -np 3 -x OMP_NUM_THREADS=$O "$BIN/unet_train" "${ARGS[@]}" \
          --logdir "$T/hosts2" 2>&1) || fail "across hosts, OMP_NUM_THREADS=$O: $out"
    [ "$(grep -c "warning: 1 rank x $O threads on $C cores of plhost[23]:" <<<"$out")" -eq 2 ] &&
      grep -q "of plhost2:" <<<"$out" && grep -q "of plhost3:" <<<"$out" && ! grep -q "of plhost1:" <<<"$out" ||
      fail "across hosts, OMP_NUM_THREADS=$O: expected one warning from each worker host: $out"
    # A host whose cpuset is narrower (one CPU): its rank takes 1 thread, and the line says so.
    if [ "$C" -ge 2 ] && command -v taskset >/dev/null; then
      out=$(NARROW3=1 timeout 120 "${H1[@]}" "${XMPI[@]}" -np 3 "$BIN/unet_train" "${ARGS[@]}" --logdir "$T/hosts3" 2>&1) ||
        fail "across hosts, host 3 on one CPU: $out"
      grep -qxF "threads: $C per rank ($C cores / 1 rank on this node; on other nodes: 1 per rank); set --num_threads to change" \
        <<<"$out" || fail "across hosts, host 3 on one CPU: $(grep '^threads' <<<"$out")"
      [ "$(log_threads "$T/hosts3")" = "$C $C 1" ] || fail "host 3 on one CPU: training.log threads '$(log_threads "$T/hosts3")'"
    fi
    across="3 hosts: $C threads per rank, 1 on a host pinned to one CPU, warnings from plhost2 and plhost3"
  else
    across="skipped (cannot create a namespace or bridge here)"
  fi
fi
echo "thread placement: ok ($C cores; ps $S+$W+$W, ps+1 $C, allreduce $A x 3, OMP_NUM_THREADS=$O warned, predict $P x 2; across hosts: $across)"
