#!/usr/bin/env bash
# scripts/mpirun_watchdog.sh around stand-ins for mpirun (no MPI, no hosts): its exit status is
# mpirun's; a lock left by another process is not taken for rank 0; a signal reaches mpirun; and an
# mpirun still waiting GRACE s after its rank 0 ended (as Open MPI 4.1's waits for a cut-off host)
# is stopped with one line and exit 1. cluster_hosts.sh tests it with a real cut link.
set -u
W=scripts/mpirun_watchdog.sh
T=$(mktemp -d)
# every stand-in has $T on its command line: none outlives the test, also on failure
trap 'pkill -f "$T/" 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# A stand-in mpirun: starts "rank 0" (a child that writes run.lock with its pid, then lives
# RANK0_S seconds), waits for it, then lives MPIRUN_S seconds more and exits with RC. SIGTERM ends
# its rank 0 and itself, as mpirun's does.
cat > "$T/fake_mpirun" <<'SH'
#!/usr/bin/env bash
dir=$1 rank0_s=$2 mpirun_s=$3 rc=$4
bash -c 'echo "$$ $(hostname) 0" > "$1/run.lock"; exec sleep "$2"' rank0 "$dir/" "$rank0_s" &
rank0=$!
trap 'kill $rank0; exit 143' TERM
wait $rank0
sleep "$mpirun_s"
exit "$rc"
SH
chmod +x "$T/fake_mpirun"

"$W" "$T" 5 -- "$T/fake_mpirun" "$T" 1.5 0.2 0 || fail "a job that ends: exit $?"
"$W" "$T" 5 -- "$T/fake_mpirun" "$T" 1.5 0.2 3; rc=$?
[ "$rc" -eq 3 ] || fail "mpirun's exit 3 came back as $rc"

# mpirun waiting 60 s after rank 0: stopped after the 2 s grace, one line, exit 1.
start=$SECONDS
out=$("$W" "$T" 2 -- "$T/fake_mpirun" "$T" 1.5 60 0 2>&1); rc=$?
took=$((SECONDS - start))
[ "$rc" -eq 1 ] || fail "a hung mpirun: exit $rc"
echo "$out" | grep -q "^mpirun_watchdog: rank 0 ended 2 s ago and mpirun still waits" || fail "no line: $out"
[ "$took" -le 15 ] || fail "the hung mpirun was stopped after $took s (grace 2)"
pgrep -f "$T/fake_mpirun" >/dev/null && fail "the stand-in mpirun is still running"

# A stale lock (older than the job; its pid long gone) is not rank 0: a long job is left alone.
echo "999999 $(hostname) 0" > "$T/run.lock"; touch -d '1 hour ago' "$T/run.lock"
cat > "$T/slow_mpirun" <<'SH'
#!/usr/bin/env bash
sleep 4; exit 0
SH
chmod +x "$T/slow_mpirun"
"$W" "$T" 1 -- "$T/slow_mpirun" || fail "a job with a stale lock was stopped: exit $?"

# SIGTERM to the watchdog reaches mpirun (which then ends as it would).
"$W" "$T" 30 -- "$T/fake_mpirun" "$T" 30 0 0 &
w=$!
sleep 1; kill -TERM $w
for _ in $(seq 20); do kill -0 $w 2>/dev/null || break; sleep 0.5; done
kill -0 $w 2>/dev/null && fail "SIGTERM did not end the job"
wait $w; rc=$?
[ "$rc" -ne 0 ] || fail "a job ended by SIGTERM exited 0 (the stand-in does not catch it)"
echo "mpirun_watchdog: exit status passed on, hung mpirun stopped after ${took} s (grace 2), stale lock ignored, SIGTERM passed on: ok"
