#!/usr/bin/env bash
# The run directory's guards (include/unet/train/run_directory.h): a second run into a finished
# run's --logdir is refused unless --resume or --overwrite says what to do, a live run's directory
# is refused with its pid and host, a stale lock (its process gone) is taken over, and the lock
# is removed at the end, also after a failure.
set -u
B=${BUILD:-build}/bin
T=$(mktemp -d)
bg=
cleanup() { [ -n "$bg" ] && kill "$bg" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1
SMALL=(--filters 4 --depth 2 --input_size 32,32 --batch_size 4 --toy_samples 8 --print_every 1000)

"$B"/unet_train "${SMALL[@]}" --epochs 1 --logdir "$T/a" >/dev/null 2>&1 || fail "first run"
[ -f "$T/a/checkpoint_best.h5" ] && [ ! -e "$T/a/run.lock" ] || fail "first run: no checkpoint, or its lock left behind"
before=$(stat -c %Y "$T/a/checkpoint_best.h5")
out=$("$B"/unet_train "${SMALL[@]}" --epochs 1 --logdir "$T/a" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "a second run into a finished run's logdir exited $rc (want 2): $out"
[ "$(echo "$out" | grep -c .)" -eq 1 ] || fail "want one line: $out"
echo "$out" | grep -qF -- "--logdir $T/a holds a run already (checkpoint_latest.h5); continue it with --resume auto, replace it with --overwrite" \
  || fail "message: $out"
[ "$(stat -c %Y "$T/a/checkpoint_best.h5")" = "$before" ] || fail "the refused run touched checkpoint_best.h5"
"$B"/unet_train "${SMALL[@]}" --epochs 2 --logdir "$T/a" --resume auto >/dev/null 2>&1 || fail "--resume auto into it"
"$B"/unet_train "${SMALL[@]}" --epochs 1 --logdir "$T/a" --overwrite >/dev/null 2>&1 || fail "--overwrite into it"

# A live run holds the directory: a second one is refused naming its pid and host.
"$B"/unet_train "${SMALL[@]}" --epochs 200 --logdir "$T/live" >/dev/null 2>&1 &
bg=$!
for _ in $(seq 1 100); do [ -f "$T/live/run.lock" ] && break; sleep 0.1; done
[ -f "$T/live/run.lock" ] || fail "no run.lock while the run is live"
read -r pid host _ <"$T/live/run.lock"
[ "$pid" = "$bg" ] && [ "$host" = "$(hostname)" ] || fail "run.lock says '$pid $host', want '$bg $(hostname)'"
out=$("$B"/unet_train "${SMALL[@]}" --epochs 1 --logdir "$T/live" --overwrite 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "a run into a live run's logdir exited $rc (want 2): $out"
echo "$out" | grep -qF -- "--logdir $T/live: a run is using it (pid $bg on $(hostname), since " || fail "live message: $out"
kill -TERM "$bg"; wait "$bg" 2>/dev/null; bg=
[ ! -e "$T/live/run.lock" ] || fail "the lock stayed after the run stopped"

# A stale lock (a killed run's) is taken over; a lock of another host is honoured.
mkdir -p "$T/stale"
echo "999999 $(hostname) 2026-01-01 00:00:00" >"$T/stale/run.lock"
"$B"/unet_train "${SMALL[@]}" --epochs 1 --logdir "$T/stale" >/dev/null 2>&1 || fail "a stale lock was not taken over"
[ ! -e "$T/stale/run.lock" ] || fail "the taken-over lock stayed"
mkdir -p "$T/other"
echo "123 some-other-host 2026-01-01 00:00:00" >"$T/other/run.lock"
out=$("$B"/unet_train "${SMALL[@]}" --epochs 1 --logdir "$T/other" 2>&1) && fail "another host's lock was ignored"
echo "$out" | grep -qF "(if that run is over, remove $T/other/run.lock)" || fail "other host message: $out"

# A failed run removes its lock too.
"$B"/unet_train --logdir "$T/f" --dims 2 --input_size 32,32 --filters 8 --depth 2 --learningrate 1e30 --print_every 1000 >/dev/null 2>&1 && fail "a diverging run exited 0"
[ ! -e "$T/f/run.lock" ] || fail "a failed run left its lock"
echo "run directory guards ok"
