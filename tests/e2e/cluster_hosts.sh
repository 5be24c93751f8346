#!/usr/bin/env bash
# The launcher's --hosts path across three real hosts built on this machine (issue 14; the hosts:
# tests/e2e/lib/cluster.sh, one set-up for every case below), through the user's command
# ./run_distributed_training.sh --hosts <cluster file>:
#
# 1. A run: every host answers the ping; the deps role installs nothing (all present); the code is
#    synced, build/bin shipped (build = ship) and the dataset copied; one mpirun on the parameter
#    server's host with Open MPI's TCP transport and runtime channel on the test subnet; ranks 0, 1, 2
#    each on their own host (training.log's hosts: line); the run directory comes back into a runs/
#    sub-directory that did not exist (the bug of issue 14: rsync cannot create parents); the final
#    parameters are bit-identical to the same 3-rank run on one host.
# 2. Before anything starts, one line naming the host and exit 1, no rank launched: a host that
#    does not answer, a host lacking a Debian package with `install = false`, a host given more
#    worker slots than it has cores.
# 3. SIGKILL of the worker on host 3 mid-epoch: the job ends with one line naming the rank and host
#    within --step_timeout, the launcher restarts it (--max_restarts 1), every host resumes from the
#    server's latest checkpoint and the run finishes; prints the seconds from the kill to the first
#    new step and the steps lost. Its preparation of the hosts (the playbook's second run) changes
#    nothing on any host (changed=0).
# 4. The link of host 3 cut (ip link set <its veth> down) mid-epoch: rank 0 names the silent rank
#    within --step_timeout, the launcher exits 1, no process of the job is left on any host once the
#    link is back (whether it ends while the link is still down is printed: not yet, see
#    BENCHMARKS.md), the checkpoint is intact (h5py reads it).
# 5. A search (--tune, ASHA) with its groups on hosts 2 and 3: the trials' directories, written by
#    the group leaders on their hosts, all come back with the run directory; the ranking is complete.
#
# Root only; otherwise, or without ip netns, unshare or sshd, it says SKIPPED and why (exit 77).
set -u
. tests/e2e/lib/cluster.sh

# 1. A run across the three hosts.
cluster_file "$T/cluster.ini"
TINY=(--epochs 2 --steps 4 --print_every 2 --checkpoint_every 2 --seed 7)
RUN=$RUNS/run
t0=$SECONDS
rc=0
timeout 600 ./run_distributed_training.sh --hosts "$T/cluster.ini" --data "$DATA" --logdir "$RUN" "${TINY[@]}" \
  > "$T/launch.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { tail -40 "$T/launch.out"; fail "run_distributed_training.sh --hosts (exit $rc)"; }
echo "the launcher's run: $((SECONDS - t0)) s"
out=$T/launch.out
grep -q "^cluster: 3 ranks (parameter server on $SUB.1), hosts: $SUB.1 $SUB.2 $SUB.3" "$out" || fail "the launcher's cluster line"
# Nothing to install: the deps role skipped its install task on every host.
sed -n '/^TASK \[deps : Install the missing packages\]/,/^TASK/p' "$out" | grep -q '^\(changed\|ok\):' &&
  fail "the deps role installed packages that are present"
for i in 1 2 3; do
  grep -q "^changed: \[$SUB.$i\]" <(sed -n '/^TASK \[sync : Copy the project to the host\]/,/^TASK/p' "$out") ||
    fail "the code was not synced to $SUB.$i"
  grep -q "^changed: \[$SUB.$i\]" <(sed -n '/^TASK \[build : Copy the programs built on this machine\]/,/^TASK/p' "$out") ||
    fail "build/bin was not shipped to $SUB.$i"
  grep -q "^changed: \[$SUB.$i\]" <(sed -n '/^TASK \[data : Copy the dataset to the host\]/,/^TASK/p' "$out") ||
    fail "the dataset was not copied to $SUB.$i"
  cmp -s build/bin/unet_train "$T/h$i/project/build/bin/unet_train" || fail "host $i runs another unet_train"
  cmp -s "$DATA" "$T/h$i/project/$DATA" || fail "host $i has another dataset"
done
grep -q 'failed=[1-9]\|unreachable=[1-9]' "$out" && fail "the playbook reported failures"
# One mpirun, on the parameter server's host, TCP on the test subnet only.
launch=$RUN/launch.log
[ -s "$RUN/training.log" ] && [ -f "$RUN/checkpoint_latest.h5" ] && [ -s "$launch" ] ||
  { ls -la "$RUN" 2>&1; fail "the run directory did not come back (training.log, checkpoint_latest.h5, launch.log)"; }
[ -f "$T/h1/project/$RUN/checkpoint_latest.h5" ] || fail "no run directory on the parameter server's host"
[ ! -e "$T/h2/project/$RUN/checkpoint_latest.h5" ] && [ ! -e "$T/h3/project/$RUN/checkpoint_latest.h5" ] ||
  fail "a worker host wrote checkpoints"
cmd=$(grep -m1 "command:" "$RUN/training.log")
grep -q "hosts: rank 0 on e2e-node1, rank 1 on e2e-node2, rank 2 on e2e-node3$" "$RUN/training.log" ||
  fail "ranks not one per host: $(grep 'hosts:' "$RUN/training.log")"
grep -q "3 ranks (rank 0 parameter server)" "$RUN/training.log" || fail "not 3 ranks: $cmd"
grep -q "done: 4 steps" "$RUN/training.log" || fail "the training did not finish"
hostfile=$(grep -v '^#' "$RUN/hostfile" | tr '\n' ' ')
[ "$hostfile" = "$SUB.1 slots=1 $SUB.2 slots=1 $SUB.3 slots=1 " ] || fail "hostfile: $hostfile"
mpirun=$(head -1 "$launch")
[[ "$mpirun" == "scripts/mpirun_watchdog.sh $RUN 30 -- mpirun -np 3 --hostfile $RUN/hostfile "*" --mca btl tcp,vader,self --mca btl_tcp_if_include $NET --mca oob_tcp_if_include $NET"*" build/bin/unet_train "* ]] ||
  fail "launch.log's first line is not the mpirun with TCP on $NET: $mpirun"
tail -1 "$out" | grep -q "^validation Dice [0-9.]* (best" || { tail -3 "$out"; fail "the launcher does not end with the validation Dice"; }

# The same run (seed, ranks, threads, flags) on one host: bit-identical parameters.
t0=$SECONDS
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 mpirun -np 3 --oversubscribe --bind-to none \
  -x OMP_NUM_THREADS=1 build/bin/unet_train --config settings/quick.ini --data "$DATA" --logdir "$T/one-host" \
  "${TINY[@]}" > "$T/one-host.out" 2>&1 || { tail -20 "$T/one-host.out"; fail "the one-host run"; }
echo "the one-host run: $((SECONDS - t0)) s"
/usr/bin/python3 - "$RUN/checkpoint_latest.h5" "$T/one-host/checkpoint_latest.h5" > "$T/compare.out" 2>&1 <<'EOF' ||
import sys, h5py, numpy as np
# /arrays: params, buffers (batch-norm statistics), optimizer state, all float32.
a, b = (h5py.File(p, "r")["arrays"] for p in sys.argv[1:3])
assert sorted(a) == sorted(b), sorted(set(a) ^ set(b))
for n in a:
    x, y = a[n][()], b[n][()]
    assert x.shape == y.shape and x.tobytes() == y.tobytes(), f"{n} differs (max |diff| {np.abs(x - y).max()})"
assert "params" in a and a["params"].size > 0, "no parameters in the checkpoint"
arrays = len(a)
print(f"checkpoint_latest.h5: {arrays} arrays ({', '.join(sorted(a))}) bit-identical to the one-host run")
EOF
  { cat "$T/compare.out"; fail "the parameters differ from the one-host run"; }
cat "$T/compare.out"


# 2. Refused before anything starts: one line on stderr naming the host, exit 1, no run directory on
# any host (the launch role makes it before mpirun), nothing synced or launched.
refused() {  # WHAT CLUSTER_FILE EXPECTED_LINE
  local err=$T/refused.err rc=0 t0=$SECONDS i
  timeout 300 ./run_distributed_training.sh --hosts "$2" --data "$DATA" --logdir "$RUNS/refused" --epochs 1 \
    > "$T/refused.out" 2> "$err" || rc=$?
  [ "$rc" -eq 1 ] || { tail -5 "$T/refused.out" "$err"; fail "$1: exit $rc, expected 1"; }
  [ "$(grep -c . "$err")" -eq 1 ] && grep -qF -- "$3" "$err" || { cat "$err"; fail "$1: not one line with '$3'"; }
  for i in 1 2 3; do [ ! -e "$T/h$i/project/$RUNS/refused" ] || fail "$1: a run directory on host $i"; done
  grep -q '^TASK \[\(sync\|launch\) :' "$T/refused.out" && fail "$1: the playbook went on to sync or launch"
  echo "$1: refused in $((SECONDS - t0)) s: $(cat "$err")"
}
# A host that does not answer: nothing at $SUB.9.
cluster_file "$T/unreachable.ini" "$SUB.2 $SUB.9"
refused "a host unreachable at start" "$T/unreachable.ini" "host $SUB.9 unreachable, nothing started"
# A host lacking a package, installation off: host 2's dpkg database without libgif-dev (a copy
# bound over it in host 2's own mount namespace; gone with the namespace, unmounted here before).
/usr/bin/python3 - /var/lib/dpkg/status "$T/status" <<'EOF' || fail "cannot write a dpkg status without libgif-dev"
import sys
stanzas = open(sys.argv[1], encoding="utf-8").read().split("\n\n")
kept = [s for s in stanzas if not s.startswith("Package: libgif-dev\n")]
assert len(kept) == len(stanzas) - 1, "libgif-dev is not installed here"
open(sys.argv[2], "w", encoding="utf-8").write("\n\n".join(kept))
EOF
nsenter --target "${SSHD_PIDS[1]}" --mount mount --bind "$T/status" /var/lib/dpkg/status || fail "cannot hide libgif-dev on host 2"
cluster_file "$T/noinstall.ini" "" "install = false"
refused "a host missing a package, install = false" "$T/noinstall.ini" "host $SUB.2: $SUB.2 lacks Debian packages: libgif-dev; nothing started"
nsenter --target "${SSHD_PIDS[1]}" --mount umount /var/lib/dpkg/status || fail "cannot unmount host 2's dpkg status"
# More worker slots than the host has cores (every host here sees this machine's cores).
cores=$(nproc)
cluster_file "$T/slots.ini" "$SUB.2:$((cores + 1)) $SUB.3"
refused "more slots than a host has" "$T/slots.ini" "host $SUB.2: $SUB.2 has $cores cores; the cluster file puts $((cores + 1)) worker slots x 1 threads on it"

# The first step line of training.log $1 after its line matching $2, as "STEP EPOCH" (empty: none).
step_after() { sed -n "/$2/,\$p" "$1" 2>/dev/null | sed -n 's/^[0-9-]* [0-9:]* step \([0-9]*\)  epoch \([0-9]*\) .*/\1 \2/p' | head -1; }
last_step() { sed -n 's/^[0-9-]* [0-9:]* step \([0-9]*\)  epoch .*/\1/p' "$1" 2>/dev/null | tail -1; }
now() { date +%s.%N; }
secs() { /usr/bin/python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
# Waits up to $1 seconds for the command to succeed.
wait_for() { local end=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }

# 3. SIGKILL of the worker on host 3 mid-epoch, with --max_restarts 1: the quick profile (the
# launcher's default settings), 3 steps per epoch, a checkpoint every 5 steps.
KILL=$RUNS/kill
KLOG=$T/h1/project/$KILL/training.log
STEP_TIMEOUT=20
t0=$SECONDS
timeout 600 ./run_distributed_training.sh --hosts "$T/cluster.ini" --data "$DATA" --logdir "$KILL" --epochs 6 \
  --print_every 1 --checkpoint_every 5 --step_timeout $STEP_TIMEOUT --max_restarts 1 > "$T/kill.out" 2>&1 &
launcher=$!
# after the checkpoint at step 5 and step 6, before step 7 is done: mid-epoch 3 (steps 7-9)
wait_for 300 grep -qs "checkpoint_latest.h5 at step 5" "$KLOG" || { tail -20 "$T/kill.out"; fail "no checkpoint at step 5"; }
wait_for 60 grep -qs " step 6  epoch" "$KLOG" || fail "no step 6"
victim=$(host_procs 3 unet_train)
[ -n "$victim" ] || fail "no unet_train on host 3"
kill -KILL $victim; killed=$(now); before=$(last_step "$KLOG")
# the job's end (one line naming the rank and host) and the restart, within --step_timeout
wait_for 120 grep -q "restart 1 of 1 with --resume auto" "$T/kill.out" || { tail -20 "$T/kill.out"; fail "no restart"; }
restarted=$(now)
line=$(grep "^fatal: .*training failed" "$T/kill.out" | head -1)
echo "$line" | grep -q "mpirun noticed that process rank 2 with PID $victim on node $SUB.3 exited on signal 9" ||
  fail "the job's end does not name rank 2 on $SUB.3: $line"
ended=$(secs "$killed" "$restarted")
/usr/bin/python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$ended" $STEP_TIMEOUT ||
  fail "the job ended $ended s after the kill, more than --step_timeout $STEP_TIMEOUT"
new_step() { [ -n "$(step_after "$KLOG" "resumed from")" ]; }
wait_for 120 new_step || { tail -20 "$T/kill.out"; fail "no step after the restart"; }
first=$(now)
resumed=$(sed -n 's/.*resumed from .* at step \([0-9]*\) .*/\1/p' "$KLOG" | tail -1)
rc=0; wait $launcher || rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$T/kill.out"; fail "the restarted job failed (exit $rc)"; }
[ "$resumed" = 5 ] || fail "resumed at step '$resumed', the latest checkpoint is at 5"
lost=$((before - resumed))
[ "$lost" -le 5 ] || fail "$lost steps lost, more than --checkpoint_every 5"
grep -q "done: 18 steps" "$KLOG" && [ -f "$KILL/checkpoint_latest.h5" ] || fail "the restarted run did not finish or come back"
# Its preparation was the playbook's second run on these hosts: nothing changed anywhere.
for i in 1 2 3; do
  sed -n '1,/^PLAY RECAP/d; /^$/q; p' "$T/kill.out" | grep -q "^$SUB.$i *: ok=[0-9]* *changed=0 *unreachable=0 *failed=0" ||
    { sed -n '/PLAY RECAP/,/^$/p' "$T/kill.out" | head -5; grep '^changed:' "$T/kill.out" | head -5 | cut -c1-300; fail "the second preparation changed something on $SUB.$i"; }
done
echo "SIGKILL of rank 2 on host 3 at step $before: the job ended and restarted $ended s later (--step_timeout $STEP_TIMEOUT);" \
  "first new step $(secs "$killed" "$first") s after the kill; resumed at step $resumed: $lost step(s) lost" \
  "(checkpoint every 5); finished in $((SECONDS - t0)) s; the second preparation changed nothing"

# 4. The link of host 3 cut mid-epoch (no restart): rank 0 names rank 2 within --step_timeout 10.
CUT=$RUNS/cut
CLOG=$T/h1/project/$CUT/training.log
t0=$SECONDS
timeout 600 ./run_distributed_training.sh --hosts "$T/cluster.ini" --data "$DATA" --logdir "$CUT" --epochs 100 \
  --print_every 1 --checkpoint_every 5 --step_timeout 10 > "$T/cut.out" 2>&1 &
launcher=$!
wait_for 300 grep -qs "checkpoint_latest.h5 at step 5" "$CLOG" || { tail -20 "$T/cut.out"; fail "no checkpoint at step 5"; }
# At the first step of epoch 3 (7 of 7-9), so that the cut lands in a step (a cut during validation
# is named the same way, from the validation heartbeats: mpi_training.sh stalls a rank there).
wait_for 60 grep -qs " step 7  epoch 3" "$CLOG" || fail "no step 7"
ip link set "ucv$ID-3" down || fail "cannot cut host 3's link"
cut=$(now)
# (the gradients' wait or the step's control message, whichever the cut lands in)
wait_for 60 grep -Eqs "failed: worker rank 2 sent (no gradients|nothing) for step [0-9]* within --step_timeout 10 s" "$CLOG" ||
  { tail -5 "$CLOG"; fail "rank 0 did not name the silent rank 2"; }
named=$(now)
named_s=$(secs "$cut" "$named")
/usr/bin/python3 -c "import sys; sys.exit(float(sys.argv[1]) > 10 + 5)" "$named_s" || fail "rank 2 named $named_s s after the cut"
# The job must end while host 3 stays cut off: rank 0 has ended, and scripts/mpirun_watchdog.sh
# stops mpirun 30 s later (Open MPI 4.1's mpirun would wait for the cut-off host's daemon until
# the link returns; BENCHMARKS.md); the keep-alives end the cut-off host's orted and rank.
gone() { local i; for i in 1 2 3; do [ -z "$(host_procs $i unet_train; host_procs $i orted; host_procs $i mpirun)" ] || return 1; done; }
left_on() { local i; for i in 1 2 3; do echo -n "host $i: $(host_procs $i mpirun | sed 's/^/mpirun /') $(host_procs $i orted | sed 's/^/orted /') $(host_procs $i unet_train | sed 's/^/unet_train /'); "; done | tr '\n' ' '; }
if ! { wait_for 90 eval '! kill -0 $launcher 2>/dev/null' && wait_for 30 gone; }; then
  down_left=$(left_on)
  ip link set "ucv$ID-3" up
  fail "the job did not end in 120 s with host 3's link down (left: $down_left)"
fi
ended_down=$(now)
ip link set "ucv$ID-3" up || fail "cannot restore host 3's link"
rc=0; wait $launcher || rc=$?
[ "$rc" -eq 1 ] || fail "the launcher exited $rc after the cut, expected 1"
grep -q "mpirun_watchdog: rank 0 ended" "$T/cut.out" "$T/h1/project/$CUT/launch.log" 2>/dev/null &&
  stopped_by="the watchdog stopped mpirun" || stopped_by="mpirun ended by itself"
line=$(grep "^fatal: .*training failed" "$T/cut.out" | head -1)
echo "$line" | grep -Eq "worker rank 2 sent (no gradients|nothing) for step" || fail "the launcher's line does not name rank 2: $line"
/usr/bin/python3 - "$T/h1/project/$CUT/checkpoint_latest.h5" <<'EOF' > "$T/cut-ck.out" 2>&1 || { cat "$T/cut-ck.out"; fail "the checkpoint after the cut is not intact"; }
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
step = int(f["integers"].attrs["step"])
params = f["arrays/params"][()]
assert step >= 5 and params.size > 0 and np.isfinite(params).all(), (step, params.size)
print(f"step {step}, {params.size} parameters, all finite")
EOF
ended_how="the job ended with the link still down ($stopped_by), nothing left on any host $(secs "$cut" "$ended_down") s after the cut"
echo "link of host 3 cut at step $(last_step "$CLOG"): rank 2 named after $named_s s (--step_timeout 10); $ended_how;" \
  "checkpoint_latest.h5 read by h5py: $(cat "$T/cut-ck.out")"

# 5. A search across the hosts: rank 0 coordinates on host 1, one group of one rank on each of hosts
# 2 and 3 (ASHA). Each group leader writes its trials' directories on its own host; they all come
# back here with the run directory, and best/ gets the best trial's checkpoint from its host.
TUNE=$RUNS/tune
t0=$SECONDS
rc=0
timeout 600 ./run_distributed_training.sh --hosts "$T/cluster.ini" --tune settings/tune_quick.ini --data "$DATA" \
  --logdir "$TUNE" --trials 4 > "$T/tune.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { tail -30 "$T/tune.out"; fail "the search across hosts (exit $rc)"; }
[ "$(tail -n +2 "$TUNE/tune/ranking.csv" | grep -c .)" -eq 4 ] || { cat "$TUNE/tune/ranking.csv"; fail "the ranking does not hold 4 trials"; }
ran_on=""
for k in 0 1 2 3; do
  log=$TUNE/tune/trial_$k/training.log
  [ -s "$log" ] || fail "trial $k's directory did not come back (no $log)"
  # where it ran: the host whose project directory holds its log, never the server's
  host=""
  for i in 1 2 3; do [ -e "$T/h$i/project/$TUNE/tune/trial_$k/training.log" ] && host+="e2e-node$i"; done
  [ "$host" = e2e-node2 ] || [ "$host" = e2e-node3 ] || fail "trial $k ran on '$host', not on one worker host"
  cmp -s "$log" "$T/h${host#e2e-node}/project/$log" || fail "trial $k's log here is not the one written on $host"
  grep -q "host: $host$" "$log" || fail "trial $k's log does not name its host $host"
  /usr/bin/python3 -c 'import json, sys; t = json.load(open(sys.argv[1]))["trials"][int(sys.argv[2])]; sys.exit(t["host"] != sys.argv[3])' \
    "$TUNE/tune/state.json" "$k" "$host" || fail "the ledger does not record trial $k's host $host"
  ran_on+=" $k:$host"
done
[[ "$ran_on" == *e2e-node2* && "$ran_on" == *e2e-node3* ]] || fail "the groups did not run on both worker hosts:$ran_on"
best=$(sed -n '2s/^[^,]*,\([^,]*\),.*/\1/p' "$TUNE/tune/ranking.csv")
cmp -s "$TUNE/best/checkpoint_best.h5" "$TUNE/tune/trial_$best/checkpoint_best.h5" ||
  fail "best/checkpoint_best.h5 is not trial $best's (the best): $(grep 'best trial' "$TUNE/launch.log")"
grep -q "^trial = $best$" "$TUNE/best/trial.txt" || fail "best/trial.txt does not name trial $best"
echo "search across hosts: trials (trial:host)$ran_on all back here, best trial $best's checkpoint in best/, $((SECONDS - t0)) s"
echo "3 hosts: a run bit-identical to one host, refusals, kill and restart, link cut, search: ok ($((SECONDS - START)) s)"
