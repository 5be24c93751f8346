#!/usr/bin/env bash
# Bad input to unet_train: one line naming the flag, exit code 2, no crash.
set -u
BIN=${BUILD:-build}/bin/unet_train
fail() { echo "FAIL: $*"; exit 1; }

expect_usage_error() {  # expect_usage_error "text the message must contain" args...
  local want=$1; shift
  local out rc
  out=$("$BIN" "$@" 2>&1); rc=$?
  [ "$rc" -eq 2 ] || fail "unet_train $* exited $rc (want 2): $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "unet_train $* printed more than one line: $out"
  echo "$out" | grep -q -- "$want" || fail "unet_train $*: message lacks '$want': $out"
}

expect_usage_error "--input_size" --input_size 100,128 --depth 4 --benchmark
expect_usage_error "--depth" --depth 0 --benchmark
expect_usage_error "--filters" --filters 0 --benchmark
expect_usage_error "--norm" --norm layer --benchmark
expect_usage_error "--upsampling" --upsampling cubic --benchmark
expect_usage_error "--loss" --loss focal --benchmark
expect_usage_error "--optimizer" --optimizer rmsprop --benchmark
expect_usage_error "--dims" --dims 4 --benchmark
expect_usage_error "--batch_size" --batch_size 0 --benchmark
expect_usage_error "--input_size" --input_size 64,abc --benchmark
expect_usage_error "--config" --config /nonexistent/settings.ini
expect_usage_error "unrecognised option" --no_such_flag 1

"$BIN" --help | grep -q -- "--learningrate" || fail "--help does not list --learningrate"
"$BIN" --help | grep -q "Model" || fail "--help is not grouped"
# --blocktime maps Intel's KMP_BLOCKTIME onto GNU OpenMP's wait policy (the program re-executes
# itself with the environment set before OpenMP starts).
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for case in "0 OMP_WAIT_POLICY=passive" "5 GOMP_SPINCOUNT=5000000" "2000 OMP_WAIT_POLICY=active"; do
  set -- $case
  "$BIN" --blocktime "$1" --dims 2 --input_size 32,32 --filters 8 --depth 2 --epochs 100000 --logdir "$T/run$1" \
    --print_every 100000 >/dev/null 2>&1 &
  pid=$!
  sleep 1
  env_of=$(tr '\0' '\n' < /proc/$pid/environ 2>/dev/null)
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "$env_of" | grep -qx "$2" || fail "--blocktime $1 did not set $2"
done
echo ok
