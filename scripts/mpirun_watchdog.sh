#!/usr/bin/env bash
# mpirun_watchdog.sh RUN_DIR GRACE_S -- mpirun ARGS...
# Runs mpirun as it is given and returns its exit status, with one difference: once rank 0 (the
# pid in RUN_DIR/run.lock, a child of this mpirun) has ended, mpirun gets GRACE_S seconds to end
# the job; after that it is stopped (SIGTERM, SIGKILL 5 s later) and this script exits 1. Why:
# with a host cut off, rank 0 names the silent rank within --step_timeout and ends, but Open MPI
# 4.1's mpirun then waits for the cut-off host's daemon until the link comes back (measured on the
# test hosts: still waiting 80 s later; BENCHMARKS.md, issue 14), and the launcher, its restarts
# and a batch scheduler would wait with it. Signals to this script go to mpirun.
set -u
[ $# -ge 4 ] && [ "$3" = -- ] || { echo "usage: $0 RUN_DIR GRACE_S -- mpirun ARGS..." >&2; exit 2; }
dir=$1 grace=$2
shift 3
marker=$(mktemp); trap 'rm -f "$marker"' EXIT  # run.lock newer than this is this job's
set -m  # mpirun in a process group of its own: a stop ends its ssh children too (they hold its output)
"$@" &
mpirun=$!
set +m
trap 'kill -TERM $mpirun 2>/dev/null' TERM
trap 'kill -INT $mpirun 2>/dev/null' INT
trap 'kill -HUP $mpirun 2>/dev/null' HUP

# Whether process $1 has ended (gone, or a zombie that mpirun has not reaped yet).
ended() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

rank0="" since=""
while ! ended "$mpirun"; do
  if [ -z "$rank0" ]; then
    # Rank 0 writes "pid host start" there; a lock left by an earlier run is older than this job.
    if [ "$dir/run.lock" -nt "$marker" ]; then
      read -r pid host _ < "$dir/run.lock" 2>/dev/null
      [ "${host:-}" = "$(hostname)" ] && [ -n "${pid:-}" ] && rank0=$pid
    fi
  elif ended "$rank0"; then
    since=${since:-$SECONDS}
    if [ $((SECONDS - since)) -ge "$grace" ]; then
      echo "mpirun_watchdog: rank 0 ended ${grace} s ago and mpirun still waits (a host cut off?): stopping it" >&2
      kill -TERM -- "-$mpirun" 2>/dev/null
      for _ in $(seq 10); do ended "$mpirun" && break; sleep 0.5; done
      kill -KILL -- "-$mpirun" 2>/dev/null
      wait "$mpirun" 2>/dev/null
      exit 1
    fi
  fi
  sleep 0.5
done
rc=0; wait "$mpirun" || rc=$?
exit "$rc"
