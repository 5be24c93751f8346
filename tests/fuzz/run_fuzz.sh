#!/usr/bin/env bash
# make fuzz: runs every libFuzzer harness ($BUILD/fuzz/fuzz_*) for FUZZ_SECONDS (default 120) on a
# copy of its seed corpus (tests/fuzz/corpus/<name>, plus tests/fuzz/regressions/<name>), and prints
# executions, coverage and findings per harness as a Markdown table (also to $BUILD/fuzz/report.md).
# A finding (crash, leak, timeout, out-of-memory) is saved under $BUILD/fuzz/findings/; keep it as
# tests/fuzz/regressions/<name>/<file> once fixed, and make test replays it under ASan and UBSan.
#   tests/fuzz/run_fuzz.sh [BUILD]      exits 1 when any harness found something
# FUZZ_RUNS=N bounds each harness by executions instead (libFuzzer's -runs; the same count on any
# machine, and a run paused with SIGSTOP still ends where it should). FUZZ_ONLY="nifti npy" runs
# only those harnesses. FUZZ_CONTINUE=1 keeps each harness's grown corpus ($BUILD/fuzz/work/<name>)
# from the run before instead of starting again from the seeds.
# For long runs: FUZZ_JOBS=N runs N processes of each harness at once on its one corpus (each finds
# the others' new inputs in it; FUZZ_RUNS is split between them), and FUZZ_SEGMENT=N (with
# FUZZ_RUNS) ends each process after N executions and starts a fresh one on the grown corpus: the
# HDF5 harnesses' resident size grows with HDF5's leaks on its error paths (80 -> 170 MB in 125,000
# executions), and with it the cost of the fork of every first-wave input. The table then sums
# the executions of every process and segment (their logs: $BUILD/fuzz/<name>.<job>.<segment>.log).
set -u
BUILD=${1:-build}
SECONDS_EACH=${FUZZ_SECONDS:-120}
if [ -n "${FUZZ_RUNS:-}" ]; then bound=(-runs="$FUZZ_RUNS"); what="FUZZ_RUNS=$FUZZ_RUNS"
else bound=(-max_total_time="$SECONDS_EACH"); what="FUZZ_SECONDS=$SECONDS_EACH"; fi
F=$BUILD/fuzz
mkdir -p "$F/findings" "$F/work"
# Scratch files (each execution writes its input as a file) in memory where there is /dev/shm.
scratch_base=$F
[ -w /dev/shm ] && scratch_base=/dev/shm
report=$F/report.md
# Leaks inside the HDF5 library on its error paths are its own (see the file); every other leak counts.
export LSAN_OPTIONS=suppressions=$(pwd)/tests/fuzz/lsan_hdf5.supp:print_suppressions=0
found=0
{
  echo "$what, $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p'))"
  echo
  echo "| harness | executions | exec/s | coverage (edges) | features | corpus | findings |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$report"
for bin in "$F"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=${bin##*/fuzz_}
  [ -z "${FUZZ_ONLY:-}" ] || [[ " $FUZZ_ONLY " == *" $name "* ]] || continue
  work=$F/work/$name
  [ "${FUZZ_CONTINUE:-0}" = 1 ] || rm -rf "$work"
  mkdir -p "$work"
  cp tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null
  [ -d tests/fuzz/regressions/"$name" ] && cp tests/fuzz/regressions/"$name"/* "$work"/ 2>/dev/null
  tmp=$(mktemp -d "$scratch_base/unet_fuzz_tmp.XXXXXX")
  # The HDF5 harnesses fork a child per first-wave input, and fork's cost is the copy of the page
  # tables: ASan's 256 MB quarantine of freed blocks made it 370 MB to copy. 4 MB halves the time
  # per input (600 inputs: 15 s -> 8 s); use-after-free is still caught, over a shorter window.
  asan=${ASAN_OPTIONS:-}
  case $name in checkpoint|hdf5_dataset) asan=${ASAN_OPTIONS:-quarantine_size_mb=4} ;; esac
  fuzz_once() {  # fuzz_once LOG BOUND...: one libFuzzer process on the shared corpus; its exit status
    ASAN_OPTIONS=$asan TMPDIR=$tmp "$bin" "${@:2}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$F/findings/$name-" "$work" >"$1" 2>&1
  }
  executions_in() { sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -1; }
  jobs=${FUZZ_JOBS:-1}
  started=$(date +%s)
  if [ "$jobs" -eq 1 ] && [ -z "${FUZZ_SEGMENT:-}" ]; then
    logs=("$F/$name.log")
    fuzz_once "${logs[0]}" "${bound[@]}"
    rc=$?
  else
    rm -f "$F/$name".*.*.log
    fuzz_job() {  # fuzz_job J: the J-th process's share of FUZZ_RUNS (or FUZZ_SECONDS), in segments
      local j=$1 k=0 done_=0 share n log
      if [ -z "${FUZZ_RUNS:-}" ]; then fuzz_once "$F/$name.$j.0.log" "${bound[@]}"; return; fi
      share=$(( FUZZ_RUNS / jobs + (j < FUZZ_RUNS % jobs ? 1 : 0) ))
      while [ "$done_" -lt "$share" ]; do
        n=$(( share - done_ ))
        [ -n "${FUZZ_SEGMENT:-}" ] && [ "$n" -gt "$FUZZ_SEGMENT" ] && n=$FUZZ_SEGMENT
        log=$F/$name.$j.$k.log
        fuzz_once "$log" -runs="$n" || return
        ls "$F/findings" | grep -q "^$name-" && return 1  # another job's finding ends this one too
        n=$(executions_in "$log")
        [ -n "$n" ] || return 1
        done_=$(( done_ + n ))
        k=$(( k + 1 ))
      done
    }
    pids=()
    for ((j = 0; j < jobs; j++)); do fuzz_job "$j" & pids+=($!); done
    rc=0
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    logs=("$F/$name".*.*.log)
  fi
  rm -rf "$tmp"
  execs=0
  for l in "${logs[@]}"; do n=$(executions_in "$l"); execs=$(( execs + ${n:-0} )); done
  log=${logs[-1]}
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  [ "${#logs[@]}" -eq 1 ] || rate=$(( execs / ($(date +%s) - started + 1) ))  # of all processes together
  cov=$(cat "${logs[@]}" | grep -o 'cov: [0-9]*' | cut -d' ' -f2 | sort -n | tail -1)
  ft=$(cat "${logs[@]}" | grep -o 'ft: [0-9]*' | cut -d' ' -f2 | sort -n | tail -1)
  corpus=$(ls "$work" | wc -l)
  findings=$(ls "$F/findings" | grep -c "^$name-")
  [ "$rc" -eq 0 ] && [ "$findings" -eq 0 ] || found=1
  echo "| $name | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $corpus | $findings$([ "$rc" -eq 0 ] || echo " (exit $rc, see $log)") |" | tee -a "$report"
done
exit "$found"
