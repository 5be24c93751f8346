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
# a missing dataset is a typing mistake like a missing --config: exit 2, before any work
expect_usage_error "--data: cannot read '/nonexistent/data.h5' (No such file or directory)" --data /nonexistent/data.h5
# a settings file's mistakes name the file and the line
T0=$(mktemp -d); trap 'rm -rf "$T0"' EXIT
printf 'dims = 2\n# a comment\nfiltres = 16\n' >"$T0/typo.ini"
expect_usage_error "--config: $T0/typo.ini:3: unrecognised option 'filtres'" --config "$T0/typo.ini"
printf 'dims = 2\n\nfilters = abc\n' >"$T0/value.ini"
expect_usage_error "--config: $T0/value.ini:3: the argument ('abc') for option 'filters' is invalid" --config "$T0/value.ini"
printf 'filters = 8\ndepth = 2\nfilters = 4\n' >"$T0/twice.ini"
expect_usage_error "--config: $T0/twice.ini:3: 'filters' is set again (first on line 1)" --config "$T0/twice.ini"
# --help: no stray ':' line under the usage, defaults as typed (no float noise)
help=$("$BIN" --help)
echo "$help" | grep -qx ":" && fail "--help has a stray ':' line"
echo "$help" | grep -E "\(=[0-9.e-]*(99999|00000[0-9])" && fail "--help prints float noise in defaults"
echo "$help" | grep -q -- "--beta1 arg (=0.9) " || fail "--help: beta1's default is not 0.9: $(echo "$help" | grep beta1)"

"$BIN" --help | grep -q -- "--learningrate" || fail "--help does not list --learningrate"
"$BIN" --help | grep -q "Model" || fail "--help is not grouped"
# --blocktime maps Intel's KMP_BLOCKTIME onto GNU OpenMP's wait policy (the program re-executes
# itself with the environment set before OpenMP starts).
T=$(mktemp -d); trap 'rm -rf "$T" "$T0"' EXIT
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
