#!/usr/bin/env bash
# The fuzz harnesses' committed inputs (tests/fuzz/corpus/<name>: seeds from real files; and
# tests/fuzz/regressions/<name>: every input that once crashed a reader, kept after the fix) run
# through the readers built with AddressSanitizer and UBSan ($BUILD/fuzz_replay, built by make
# test). Any report from a sanitizer, or a crash, fails; a harness without inputs fails too. The
# Python harness of scripts/cluster_config.py replays its inputs with the system's python3.
set -u
BUILD=${BUILD:-build}
fail() { echo "FAIL: $*"; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Leaks inside the HDF5 library on its error paths are its own (see the file); every other leak counts.
export LSAN_OPTIONS=suppressions=$(pwd)/tests/fuzz/lsan_hdf5.supp:print_suppressions=0
n=0
for src in tests/fuzz/fuzz_*.cpp; do
  name=$(basename "$src" .cpp); name=${name#fuzz_}
  bin=$BUILD/fuzz_replay/fuzz_$name
  [ -x "$bin" ] || fail "$bin missing (make test builds it)"
  dirs=(tests/fuzz/corpus/"$name")
  [ -d tests/fuzz/regressions/"$name" ] && dirs+=(tests/fuzz/regressions/"$name")
  out=$(timeout 300 "$bin" "${dirs[@]}" 2>&1); rc=$?
  [ "$rc" -ne 124 ] || fail "$name: the replay hung (a reader loops on one of its inputs)"
  [ "$rc" -eq 0 ] || fail "$name: exit $rc: $(echo "$out" | grep -m3 'ERROR\|runtime error\|SUMMARY' | tr '\n' ' ')"
  count=$(echo "$out" | sed -n 's/^replayed \([0-9]*\) inputs$/\1/p')
  [ "${count:-0}" -gt 0 ] || fail "$name: no inputs replayed"
  echo "$name: $count inputs, no sanitizer report"
  n=$((n + 1))
done
[ "$n" -ge 9 ] || fail "only $n harnesses"
# The cluster file parser's harness, in Python: its inputs through the same checks without atheris
# (any exception but the documented one-line ClusterError fails).
out=$(timeout 300 /usr/bin/python3 tests/fuzz/fuzz_cluster_config.py --replay tests/fuzz/corpus/cluster_config \
  tests/fuzz/regressions/cluster_config 2>&1) || fail "cluster_config: $(echo "$out" | tail -3 | tr '\n' ' ')"
echo "cluster_config: ${out#replayed }"
