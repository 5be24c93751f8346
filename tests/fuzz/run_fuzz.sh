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
  log=$F/$name.log
  tmp=$(mktemp -d "$scratch_base/unet_fuzz_tmp.XXXXXX")
  # The HDF5 harnesses fork a child per first-wave input, and fork's cost is the copy of the page
  # tables: ASan's 256 MB quarantine of freed blocks made it 370 MB to copy. 4 MB halves the time
  # per input (600 inputs: 15 s -> 8 s); use-after-free is still caught, over a shorter window.
  asan=${ASAN_OPTIONS:-}
  case $name in checkpoint|hdf5_dataset) asan=${ASAN_OPTIONS:-quarantine_size_mb=4} ;; esac
  ASAN_OPTIONS=$asan TMPDIR=$tmp "$bin" "${bound[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$F/findings/$name-" "$work" >"$log" 2>&1
  rc=$?
  rm -rf "$tmp"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(ls "$work" | wc -l)
  findings=$(ls "$F/findings" | grep -c "^$name-")
  [ "$rc" -eq 0 ] && [ "$findings" -eq 0 ] || found=1
  echo "| $name | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $corpus | $findings$([ "$rc" -eq 0 ] || echo " (exit $rc, see $log)") |" | tee -a "$report"
done
exit "$found"
