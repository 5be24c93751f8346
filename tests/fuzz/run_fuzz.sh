#!/usr/bin/env bash
# make fuzz: runs every libFuzzer harness ($BUILD/fuzz/fuzz_*) for FUZZ_SECONDS (default 120) on a
# copy of its seed corpus (tests/fuzz/corpus/<name>, plus tests/fuzz/regressions/<name>), and prints
# executions, coverage and findings per harness as a Markdown table (also to $BUILD/fuzz/report.md).
# A finding (crash, leak, timeout, out-of-memory) is saved under $BUILD/fuzz/findings/; keep it as
# tests/fuzz/regressions/<name>/<file> once fixed, and make test replays it under ASan and UBSan.
#   tests/fuzz/run_fuzz.sh [BUILD]      exits 1 when any harness found something
set -u
BUILD=${1:-build}
SECONDS_EACH=${FUZZ_SECONDS:-120}
F=$BUILD/fuzz
mkdir -p "$F/findings" "$F/work"
report=$F/report.md
# Leaks inside the HDF5 library on its error paths are its own (see the file); every other leak counts.
export LSAN_OPTIONS=suppressions=$(pwd)/tests/fuzz/lsan_hdf5.supp:print_suppressions=0
found=0
{
  echo "FUZZ_SECONDS=$SECONDS_EACH, $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p'))"
  echo
  echo "| harness | executions | exec/s | coverage (edges) | features | corpus | findings |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$report"
for bin in "$F"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=${bin##*/fuzz_}
  work=$F/work/$name
  rm -rf "$work"; mkdir -p "$work"
  cp tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null
  [ -d tests/fuzz/regressions/"$name" ] && cp tests/fuzz/regressions/"$name"/* "$work"/ 2>/dev/null
  log=$F/$name.log
  rm -rf "$F/tmp"; mkdir -p "$F/tmp"
  TMPDIR=$F/tmp "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$F/findings/$name-" "$work" >"$log" 2>&1
  rc=$?
  rm -rf "$F/tmp"
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
