#!/usr/bin/env bash
# Runs every test of the project and ends with one line "N passed, N failed, N skipped".
#   tests/run_all.sh BUILD_DIR [--unit-only]
# GoogleTest binaries count one per test case (GTEST_SKIP counts as skipped); each script in
# tests/e2e/*.sh and tests/reference/*.sh counts as one test: exit 0 = pass, exit 77 (after a line
# "SKIPPED: <reason>") = skipped, anything else = fail.
set -u
BUILD=${1:-build}
MODE=${2:-}
passed=0
failed=0
skipped=0
failed_names=()
skipped_names=()
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# Busy-waiting OpenMP threads make tests 50x slower when anything else shares the cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  out=$("$t" --gtest_brief=1 2>&1)
  rc=$?
  echo "$out" | grep -v '^\[==========\]\|^\[  PASSED  \]\|^Running main()' | sed "s/^/[$name] /" | tail -40
  # --gtest_brief prints one "[  FAILED  ] Suite.Test (N ms)" line per failing test and the total
  # in "[==========] N tests from M test suites ran."
  total=$(echo "$out" | sed -n 's/^\[==========\] \([0-9]*\) tests\{0,1\} from .* ran\..*/\1/p' | tail -1)
  f=$(echo "$out" | grep -c '^\[  FAILED  \] [^ ]* (')
  # --gtest_brief prints no line per skipped test, only the total "[  SKIPPED ] N test(s)".
  sk=$(echo "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\}[.,].*/\1/p' | tail -1)
  sk=${sk:-0}
  total=${total:-0}
  p=$((total - f - sk))
  skipped=$((skipped + sk))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed before reporting
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -ne 0 ] && failed_names+=("$name")
  echo "[$name] $p passed, $f failed, $sk skipped"
done

if [ "$MODE" != "--unit-only" ]; then
  for s in tests/e2e/*.sh tests/reference/*.sh; do
    [ -f "$s" ] || continue
    name=$(basename "$s")
    start=$(date +%s)
    out=$(BUILD="$BUILD" bash "$s" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then
      passed=$((passed + 1)); echo "[$name] ok ($(( $(date +%s) - start ))s)"
    elif [ "$rc" -eq 77 ]; then
      skipped=$((skipped + 1)); skipped_names+=("$name")
      echo "[$name] $(echo "$out" | grep -m1 '^SKIPPED' || echo 'SKIPPED (no reason given)')"
    else
      failed=$((failed + 1)); failed_names+=("$name")
      echo "$out" | tail -30 | sed "s/^/[$name] /"
      echo "[$name] FAILED"
    fi
  done
fi

[ ${#skipped_names[@]} -gt 0 ] && echo "skipped: ${skipped_names[*]}"
[ ${#failed_names[@]} -gt 0 ] && echo "failing: ${failed_names[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
