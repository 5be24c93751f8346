#!/usr/bin/env bash
# Hyperparameter search under real mpirun (rank 0 coordinates, the others train in groups): ASHA
# stops weak trials while they run, a diverging trial is marked failed and the search still
# finishes (in one-rank groups and in a parameter-server group), an error only one rank of a group
# sees ends the job and --resume reruns that trial, and a search stopped by SIGTERM and then by a
# SIGKILLed rank finishes on --resume without redoing finished trials. TensorBoard (from PyPI) reads
# each trial's HParams session back.
set -u
BIN=${BUILD:-build}/bin/unet_train
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
fail() { echo "FAIL: $*"; exit 1; }
count() { awk -F, -v s="$2" 'NR > 1 && $2 == s' "$1" | wc -l; }

# A bad search-space line: exit 2, one line naming the file and the line, before any training.
printf '[search]\nlearningrate = loguniform(0, 1)\n' >"$T/bad.ini"
msg=$("$BIN" --tune "$T/bad.ini" --logdir "$T/bad" 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$msg" = "unet_train: --tune: $T/bad.ini:2: learningrate: loguniform(lo, hi) needs lo > 0 (see --help)" ] ||
  fail "bad line: $rc $msg"

cat > "$T/asha.ini" <<'INI'
[search]
learningrate = choice(0.004, 0.00003, 1e30, 0.002)
beta2 = choice(0.99, 0.999)
[fixed]
dims = 2
input_size = 32,32
filters = 8
depth = 2
batch_size = 8
toy_samples = 24
epochs = 4
const_learningrate = true
print_every = 1000
image_every = 0
[tune]
scheduler = asha
grace_period = 1
reduction_factor = 2
INI
# 8 trials on 2 groups of 1 rank: ASHA stops some, lr 1e30 diverges.
out=$(timeout 300 "${MPI[@]}" -np 3 "$BIN" --tune="$T/asha.ini" --logdir "$T/asha" 2>&1) || fail "asha search: $out"
L=$T/asha/tune/trials.csv
[ "$(awk 'END {print NR}' "$L")" -eq 9 ] || fail "ledger rows: $(cat "$L")"
[ "$(count "$L" failed)" -eq 2 ] || fail "diverging trials not failed: $(cat "$L")"
grep -q "^[0-9]*,failed,.*loss is NaN" "$L" || grep -q "^[0-9]*,failed,.*loss is Inf" "$L" || fail "no reason: $(cat "$L")"
[ "$(count "$L" stopped)" -ge 1 ] || fail "ASHA stopped nothing: $(cat "$L")"
[ "$(count "$L" completed)" -ge 1 ] || fail "nothing completed: $(cat "$L")"
awk -F, 'NR > 1 && $2 == "stopped" && $3 >= 4 {bad = 1} END {exit bad}' "$L" || fail "a stopped trial ran every epoch"
awk -F, 'NR > 1 {g[$7] = 1} END {exit !(g[0] && g[1])}' "$L" || fail "not both groups trained: $(cat "$L")"
grep -q "stopped early after epoch" "$T"/asha/tune/trial_*/training.log || fail "no trial log says it stopped early"
# Where each trial ran: its group leader's host, in the ledger and in its own log (groups of one rank).
/usr/bin/python3 - "$T/asha/tune/state.json" "$(hostname)" <<'PY' || fail "hosts in the ledger"
import json, sys
trials = json.load(open(sys.argv[1]))["trials"]
assert len(trials) == 8 and all(t["host"] == sys.argv[2] for t in trials), [t.get("host") for t in trials]
PY
for log in "$T"/asha/tune/trial_*/training.log; do
  grep -q "host: $(hostname)$" "$log" || fail "$log does not name its host"
done
[ -f "$T/asha/best/checkpoint_best.h5" ] && [ -f "$T/asha/tune/ranking.md" ] && [ -f "$T/asha/tune/ranking.csv" ] ||
  fail "no ranking or best checkpoint"
best=$(sed -n 's/^trial = //p' "$T/asha/best/trial.txt")
[ "$(sed -n 2p "$T/asha/tune/ranking.csv" | cut -d, -f2)" = "$best" ] || fail "best/ is not the top-ranked trial"
echo "$out" | grep -q "search finished: 8 trials" || fail "no summary line: $out"
# TensorBoard (from PyPI, scripts/tensorboard_venv.sh) reads one HParams session per trial: the
# trial's hyperparameters, and failure for the diverged trials, success for the others.
PY=$(scripts/tensorboard_venv.sh "${BUILD:-build}") || fail "cannot install TensorBoard (scripts/tensorboard_venv.sh)"
"$PY" - "$T/asha" <<'PYEOF' || fail "TensorBoard's hparams of the trials"
import csv, glob, math, sys
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import metadata as hp_meta, api_pb2
logdir = sys.argv[1]
for row in csv.DictReader(open(f"{logdir}/tune/trials.csv")):
    run = f"{logdir}/tune/trial_{row['trial']}"
    acc = ea.EventAccumulator(run, size_guidance={ea.TENSORS: 0})
    acc.Reload()
    start = hp_meta.parse_session_start_info_plugin_data(acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    end = hp_meta.parse_session_end_info_plugin_data(acc.SummaryMetadata("_hparams_/session_end_info").plugin_data.content)
    hp = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert math.isclose(hp["learning_rate"], float(row["learningrate"]), rel_tol=1e-6), (row, hp)
    assert math.isclose(hp["beta2"], float(row["beta2"]), rel_tol=1e-6), (row, hp)
    want = api_pb2.STATUS_FAILURE if row["status"] == "failed" else api_pb2.STATUS_SUCCESS
    assert end.status == want, (row["trial"], row["status"], end.status)
PYEOF
# The same search again in the same --logdir without --resume: one clear line.
msg=$(timeout 60 "${MPI[@]}" -np 3 "$BIN" --tune="$T/asha.ini" --logdir "$T/asha" 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && echo "$msg" | grep -q "holds a search already" || fail "second search: $rc $msg"

# A parameter-server group (G = 2): the diverging trial fails on both of its ranks, the search goes on.
cat > "$T/div.ini" <<'INI'
[search]
learningrate = choice(1e30, 0.002)
[fixed]
dims = 2
input_size = 32,32
filters = 8
depth = 2
batch_size = 8
toy_samples = 24
epochs = 2
print_every = 1000
image_every = 0
INI
timeout 120 "${MPI[@]}" -np 3 "$BIN" --tune="$T/div.ini" --group_size 2 --logdir "$T/div" >/dev/null 2>&1 || fail "ps group search"
[ "$(count "$T/div/tune/trials.csv" failed)" -eq 1 ] && [ "$(count "$T/div/tune/trials.csv" completed)" -eq 1 ] ||
  fail "ps group ledger: $(cat "$T/div/tune/trials.csv")"

# An error only one rank of a parameter-server group sees (its worker stalls: the test hook
# UNET_TEST_STALL=rank:step; the server gives up after --step_timeout) ends the job with one line;
# the ledger survives and --resume counts the failure and reruns the trial.
msg=$(timeout 120 "${MPI[@]}" -np 3 -x UNET_TEST_STALL=1:3 "$BIN" --tune="$T/div.ini" --group_size 2 --step_timeout 3 \
      --logdir "$T/stall" 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "stalled worker: exit $rc"
echo "$msg" | grep -q "worker rank 1 sent nothing for step 3" || fail "stall message: $msg"
grep -q ",running," "$T/stall/tune/trials.csv" || fail "stall ledger: $(cat "$T/stall/tune/trials.csv")"
timeout 120 "${MPI[@]}" -np 3 "$BIN" --tune="$T/div.ini" --group_size 2 --logdir "$T/stall" \
  --resume auto --max_failures 1 >/dev/null 2>&1 || fail "resume after a stall"
[ "$(count "$T/stall/tune/trials.csv" completed)" -eq 1 ] && grep -q "^1,completed,2,.*,1,the job ended while it ran," \
  "$T/stall/tune/trials.csv" || fail "after the stall: $(cat "$T/stall/tune/trials.csv")"

# --search tpe under mpirun: trials after the start-up ones are drawn on rank 0 and reach their
# group with the assignment; in a parameter-server group (G = 2) both ranks must get the same
# ones (the ranks compare their settings before training). Every kind of hyperparameter.
cat > "$T/tpe.ini" <<'INI'
[search]
learningrate = loguniform(1e-3, 1e-2)
beta2 = uniform(0.9, 0.999)
filters = range(4, 8, 4)
norm = choice(none, batch)
[fixed]
dims = 2
input_size = 32,32
depth = 2
batch_size = 8
toy_samples = 16
epochs = 2
print_every = 1000
image_every = 0
[tune]
search = tpe
trials = 6
startup_trials = 2
INI
for g in 1 2; do
  out=$(timeout 300 "${MPI[@]}" -np 3 "$BIN" --tune="$T/tpe.ini" --group_size $g --logdir "$T/tpe$g" 2>&1) ||
    fail "tpe search, groups of $g: $out"
  L=$T/tpe$g/tune/trials.csv
  echo "$out" | grep -q "search: 6 trials (tpe after 2 random start-up trials)" || fail "tpe summary: $out"
  [ "$(count "$L" completed)" -eq 6 ] || fail "tpe ledger, groups of $g: $(cat "$L")"
  awk -F, 'NR > 1 && !($10 >= 0.001 && $10 <= 0.01 && $11 >= 0.9 && $11 <= 0.999 && ($12 == 4 || $12 == 8) &&
           ($13 == "none" || $13 == "batch")) {bad = 1} END {exit bad}' "$L" || fail "tpe trial out of its space: $(cat "$L")"
done
# The two searches drew from the same seed: the same start-up trials.
[ "$(sed -n 2,3p "$T/tpe1/tune/trials.csv" | cut -d, -f10-)" = "$(sed -n 2,3p "$T/tpe2/tune/trials.csv" | cut -d, -f10-)" ] ||
  fail "start-up trials differ between the searches"
# A resume must keep tpe's rules: another --startup_trials is another search.
msg=$("$BIN" --tune "$T/tpe.ini" --logdir "$T/tpe1" --resume auto --startup_trials 3 2>&1); rc=$?
[ "$rc" -eq 2 ] && echo "$msg" | grep -q "started with another search space, --search, --trials, --startup_trials or --seed" ||
  fail "tpe resume with other rules: $rc $msg"

# Interruptions: SIGTERM to every rank, then SIGKILL to one training rank, then a resume that finishes.
cat > "$T/long.ini" <<'INI'
[search]
learningrate = choice(0.001, 0.002, 0.003, 0.004, 0.005, 0.006)
[fixed]
dims = 2
input_size = 32,32
filters = 16
depth = 2
batch_size = 8
toy_samples = 64
epochs = 8
checkpoint_every = 4
const_learningrate = true
print_every = 1000
image_every = 0
INI
L=$T/long/tune/trials.csv
run_until() {  # run_until SIGNAL COMPLETED [extra flags]: start the search, signal when COMPLETED trials
    # are done and this run has a trial running (a resumed run may find COMPLETED in the ledger
    # before it has started anything: a signal then would land in its start-up, not in a trial)
    local sig=$1 want=$2; shift 2
    timeout 300 "${MPI[@]}" -np 3 "$BIN" --tune="$T/long.ini" --logdir "$T/long" "$@" >"$T/out.txt" 2>&1 &
    local pid=$! n=0 running=0
    for _ in $(seq 1 600); do
        [ -f "$L" ] && n=$(count "$L" completed) && running=$(count "$L" running)
        [ "$n" -ge "$want" ] && [ "$running" -ge 1 ] && break
        sleep 0.1
    done
    [ "$n" -ge "$want" ] && [ "$running" -ge 1 ] ||
        fail "no trial completed ($n) or none running ($running): $(cat "$T/out.txt")"
    local ranks=$(pgrep -f "^[^ ]*unet_train .*--logdir $T/long")
    if [ "$sig" = TERM ]; then
        kill -TERM $ranks
    else
        for p in $ranks; do  # one training rank (world rank 2), not the coordinator
            tr '\0' '\n' </proc/$p/environ | grep -qx OMPI_COMM_WORLD_RANK=2 && kill -KILL "$p"
        done
    fi
    wait "$pid"
}
run_until TERM 1; rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc $(tail -5 "$T/out.txt")"
grep -q "search interrupted" "$T/out.txt" || fail "no interruption line: $(tail -5 "$T/out.txt")"
[ "$(count "$L" pending)" -ge 1 ] && [ "$(count "$L" failed)" -eq 0 ] || fail "after SIGTERM: $(cat "$L")"
awk -F, 'NR > 1 && $8 != 0 {bad = 1} END {exit bad}' "$L" || fail "SIGTERM counted as a failure: $(cat "$L")"
sums() { for k in $(awk -F, 'NR > 1 && $2 == "completed" {print $1}' "$L"); do
           md5sum "$T/long/tune/trial_$k/checkpoint_latest.h5" "$T/long/tune/trial_$k/training.log"; done; }
done_before=$(sums)
run_until KILL 3 --resume auto; rc=$?
[ "$rc" -ne 0 ] || fail "SIGKILL of a rank: the job went on"
grep -q ",running," "$L" || fail "no trial was running at the kill: $(cat "$L")"
done_before2=$(sums)
timeout 300 "${MPI[@]}" -np 3 "$BIN" --tune="$T/long.ini" --logdir "$T/long" --resume auto --max_failures 1 \
  >"$T/out.txt" 2>&1 || fail "resume: $(tail -20 "$T/out.txt")"
[ "$(count "$L" completed)" -eq 6 ] || fail "after resume: $(cat "$L")"
awk -F, 'NR > 1 && $8 == 1 {n++} END {exit !(n >= 1)}' "$L" || fail "the killed trial's failure is not counted: $(cat "$L")"
# Finished trials were not trained again: their checkpoints and logs are byte for byte the same.
echo "$done_before" | md5sum -c --quiet - || fail "a trial finished before SIGTERM was redone"
echo "$done_before2" | md5sum -c --quiet - || fail "a trial finished before SIGKILL was redone"
grep -q "resumed from" "$T"/long/tune/trial_*/training.log || fail "no trial continued from its checkpoint"
exit 0
