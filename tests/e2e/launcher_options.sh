#!/usr/bin/env bash
# run_distributed_training.sh on this machine: what --dry-run shows (mpirun with a parameter
# server and two workers, binding for the cores there are, pass-through flags, --tune), one-line
# errors for bad options, and --max_restarts: a rank killed mid-run is restarted with --resume auto
# and the job finishes from its checkpoint.
set -u
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
run=runs/e2e-restarts-$$
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp" "$run" "$run-pty"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
L=./run_distributed_training.sh

out=$(OMP_NUM_THREADS= $L --dry-run --epochs 2 --tune settings/tune_quick.ini) || fail "--dry-run exit $?: $out"
cmd=$(echo "$out" | sed -n 's/^would run: mpirun/mpirun/p')
[ -n "$cmd" ] || fail "no mpirun line in: $out"
echo "$cmd" | grep -q -- "^mpirun -np 3 " || fail "not 3 ranks: $cmd"
# a search is the one its file describes, as under mpirun in the README: no settings or data added
echo "$cmd" | grep -q -- "unet_train --logdir runs/[0-9-]* --tune=settings/tune_quick.ini --epochs 2$" ||
  fail "flags not passed through in order, or settings added to the search: $cmd"
cores=$(nproc)
if [ $((3 * (cores / 2))) -le "$cores" ]; then
  echo "$cmd" | grep -q -- "--map-by slot:PE=$((cores / 2)) --bind-to core" || fail "no per-rank cores on $cores cores: $cmd"
else
  echo "$cmd" | grep -q -- "--bind-to none" || fail "bound ranks on $cores cores: $cmd"
  [ "$cores" -ge 3 ] || echo "$cmd" | grep -q -- "--oversubscribe" || fail "3 ranks on $cores cores without --oversubscribe: $cmd"
fi
echo "$cmd" | grep -q -- "-x OMP_NUM_THREADS=$(( cores / 2 > 0 ? cores / 2 : 1 ))" || fail "OMP_NUM_THREADS not cores/workers: $cmd"
out=$($L --dry-run --np 5 --settings=settings/unet2d.ini --data settings/quick.ini --resume auto) || fail "--dry-run 2"
echo "$out" | grep -q "mpirun -np 5 .*--config settings/unet2d.ini --data settings/quick.ini .* --resume auto$" || fail "options: $out"

check_error() {  # EXPECTED-TEXT ARGS...
  local expected=$1 out rc; shift
  out=$($L "$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq 2 ] || fail "$* -> exit $rc (expected 2)"
  [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q -- "$expected" || fail "$* -> '$out' (expected '$expected')"
}
# the search runs as the README's mpirun form does, and its banner says what the ranks do
out=$($L --tune settings/tune_quick.ini --logdir "$tmp/search" 2>&1) || fail "--tune run: $(echo "$out" | tail -3)"
echo "$out" | grep -q "^searching settings/tune_quick.ini: 3 ranks (rank 0 coordinates, 2 groups of 1 training the trials)" ||
  fail "search banner: $(echo "$out" | grep -m1 "ranks")"
echo "$out" | tail -1 | grep -q "^best trial [0-9]*: validation Dice" || fail "search's last line: $(echo "$out" | tail -1)"
check_error "--np: expected a positive integer, got 'two'" --np two --dry-run
check_error "--settings: cannot read 'nope.ini'" --settings nope.ini --dry-run
check_error "--max_restarts: expected 0 or a positive integer, got '-1'" --max_restarts -1 --dry-run
check_error "--tune: no such file" --tune nope.ini --dry-run
# unet_train checks the flags passed on before mpirun starts (a dry run too): one line, exit 2,
# nothing from Open MPI
check_error "unet_train: unrecognised option '--epocs'" --dry-run --epocs 2
check_error "unet_train: unrecognised option '--epocs'" --epocs 2
check_error "unet_train: --loss: " --loss focal
out=$($L --epocs 2 2>&1); echo "$out" | grep -q "ORTE\|MPI_ABORT\|^training " && fail "a bad flag reached mpirun: $out"
check_error "--data: no such file" --data nope.h5 --dry-run
check_error "--hosts: no such file" --hosts nope.ini --dry-run
check_error "--logdir: expected a value" --dry-run --logdir
check_error "--config: use --settings FILE" --config x.ini

# --max_restarts: kill a worker once training runs; the launcher restarts the job, resuming.
OMP_NUM_THREADS=1 $L --logdir "$run" --max_restarts 1 --epochs 50 --steps 40 \
  --print_every 1 --checkpoint_every 2 --step_timeout 60 > "$tmp/out" 2>&1 &
launcher=$!
for _ in $(seq 600); do grep -q "checkpoint .* at step [2-9]" "$run/training.log" 2>/dev/null && break; sleep 0.2; done
grep -q "checkpoint .* at step" "$run/training.log" 2>/dev/null || { tail "$tmp/out"; fail "training did not start"; }
mpirun_pid=$(pgrep -P $launcher -x mpirun) || fail "no mpirun under the launcher"
worker=$(pgrep -P "$mpirun_pid" | sed -n 2p)
[ -n "$worker" ] || fail "no ranks under mpirun"
kill -KILL "$worker"
rc=0; wait $launcher || rc=$?
[ "$rc" -eq 0 ] || { tail -15 "$tmp/out"; fail "launcher exit $rc after a restart"; }
grep -q "restart 1 of 1 with --resume auto" "$tmp/out" || fail "no restart message"
grep -q "resumed from $run/checkpoint_latest.h5 at step" "$run/training.log" || fail "the restart did not resume"
grep -q "done: 40 steps" "$run/training.log" || fail "the restarted job did not finish"
tail -1 "$tmp/out" | grep -q "^validation Dice [0-9.]* (best [0-9.]*)$" || fail "last line: $(tail -1 "$tmp/out")"
grep -q "^TensorBoard: scripts/tensorboard_venv.sh && build/tbvenv/bin/tensorboard --logdir runs/" "$tmp/out" || fail "no TensorBoard hint"

# SIGTERM to the launcher (as Ctrl-C) reaches the job: checkpoint, stop, no restart; then resume.
rm -rf "$run"
OMP_NUM_THREADS=1 $L --logdir "$run" --max_restarts 2 --steps 400 --print_every 1 > "$tmp/term" 2>&1 &
launcher=$!
for _ in $(seq 600); do grep -q "step 3 " "$run/training.log" 2>/dev/null && break; sleep 0.2; done
kill -TERM $launcher
wait $launcher; rc=$?
grep -q "stopped by signal 15 at step" "$run/training.log" || { tail "$tmp/term" "$run/training.log"; fail "SIGTERM did not checkpoint and stop the job"; }
grep -q "restart [0-9] of" "$tmp/term" && fail "restarted after SIGTERM"
[ "$rc" -eq 0 ] || fail "a stop by SIGTERM exits $rc (every rank checkpointed: expected 0)"
grep -q "stopped; continue with the same command and --logdir $run --resume auto" "$tmp/term" || fail "no continue hint"
stopped=$(sed -n 's/.*stopped by signal 15 at step \([0-9]*\).*/\1/p' "$run/training.log")
OMP_NUM_THREADS=1 $L --logdir "$run" --steps $((stopped + 2)) --resume auto > "$tmp/resume" 2>&1 ||
  fail "resume after SIGTERM"
grep -q "resumed from $run/checkpoint_latest.h5 at step $stopped " "$run/training.log" || fail "did not resume at step $stopped"
# Ctrl-C in a terminal: SIGINT reaches the whole foreground process group at once (launcher,
# mpirun, ranks). A pseudo-terminal types it; the job checkpoints, the launcher exits 0 and says
# how to continue (mpirun in that group would have killed the ranks 1 s after forwarding it).
/usr/bin/python3 - "$run-pty" > "$tmp/pty" 2>&1 <<'PY' || { cat "$tmp/pty"; fail "Ctrl-C in a terminal"; }
import os, pty, select, signal, sys, time
run = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    # A terminal's shell starts with SIGINT and SIGQUIT at their defaults. This test may run under
    # a shell's background job (make test started with '&'), which ignores both; an ignored SIGINT
    # stays ignored across exec and a shell cannot trap it, so the launcher would never see Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.execv("./run_distributed_training.sh", ["./run_distributed_training.sh", "--logdir", run, "--steps", "400",
                                               "--print_every", "1"])
out, typed, deadline = b"", False, time.time() + 300
while time.time() < deadline:
    if not typed and b"step 3 " in out:
        os.write(fd, b"\x03")  # the terminal's interrupt character
        typed = True
    if select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
text = out.decode(errors="replace")
_, status = os.waitpid(pid, 0)
print(text[-1500:])
assert typed, "training never reached step 3"
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "launcher status %r after Ctrl-C" % status
assert "stopped; continue with the same command and --logdir %s --resume auto" % run in text, "no continue hint"
log = open(run + "/training.log").read()
assert "stopped by signal" in log, "the ranks did not checkpoint and stop"
assert os.path.exists(run + "/checkpoint_latest.h5"), "no checkpoint_latest.h5"
PY
# The main command installs what building and running needs, not the test tools.
out=$($L --dry-run) || fail "--dry-run exit $?: $out"
echo "$out" | grep -qx "would run: scripts/install_deps.sh --runtime" || fail "the main command's install step: $out"
runtime=$(scripts/install_deps.sh --list --runtime) || fail "install_deps.sh --list --runtime"
for tool in python3-torch python3-nibabel python3-h5py python3-scipy libgtest-dev ansible-lint ansible slurmd; do
  echo "$runtime" | grep -qx "$tool" && fail "the runtime list installs the test tool $tool"
done
for need in libdnnl-dev libopenmpi-dev openmpi-bin libhdf5-dev libnifti2-dev; do
  echo "$runtime" | grep -qx "$need" || fail "the runtime list lacks $need"
done
# make all (what the launcher runs) asks for the runtime packages only; make test for all of them.
make -n BUILD="$tmp/dry_build" all | grep -q "install_deps.sh --runtime" || fail "make all does not install the runtime list"
make -n BUILD="$tmp/dry_build" all | grep -q "install_deps.sh$" && fail "make all installs the test packages"
# A build that takes a while says so every 15 s, and a failed one shows its log's tail and exits
# 2 (a stand-in make on PATH: 16 s of work, then an error; the real make.log is put back after).
mkdir "$tmp/fakebin"
cat > "$tmp/fakebin/make" <<'MAKE'
#!/bin/sh
[ "$1" = -q ] && exit 1
sleep 16; echo "stand-in make: compiler error"; exit 1
MAKE
chmod +x "$tmp/fakebin/make"
[ -f build/make.log ] && cp -p build/make.log "$tmp/make.log.saved"
out=$(PATH="$tmp/fakebin:$PATH" $L --steps 1 2>&1); rc=$?
if [ -f "$tmp/make.log.saved" ]; then cp -p "$tmp/make.log.saved" build/make.log; else rm -f build/make.log; fi
[ "$rc" -eq 2 ] || fail "a failed build: exit $rc: $out"
echo "$out" | grep -q "^building the programs (make -j[0-9]* all; log in build/make.log)" || fail "no build line: $out"
echo "$out" | grep -q "^  still building: 15 s" || fail "no progress line while building: $out"
echo "$out" | grep -q "stand-in make: compiler error" && echo "$out" | grep -q "the build failed (build/make.log)" ||
  fail "a failed build does not show its log: $out"
echo "dry run, errors, restart after a killed worker, SIGTERM and resume, build progress: ok"
