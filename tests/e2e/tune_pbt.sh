#!/usr/bin/env bash
# --scheduler pbt under real mpirun (rank 0 coordinates, one-rank groups train the members): a
# population of 4 tiny 2D models in 3 rounds of 2 epochs on 4 groups. Checks the lineage and
# schedules in state.json, that every schedule value lies in the space, that each exploit went over
# MPI from the donor's group leader to the recipient's (a group keeps its member from round to
# round, so with 4 groups every donor and recipient are in different groups) with the same checksum
# on both sides (rank 0 compares them), that a recipient resumed from the received checkpoint at the
# donor's step, the best member's schedule in ranking.md, the exploit's cost (printed),
# TensorBoard's pbt/<name> scalars, a search on 2 groups stopped by SIGTERM mid-population that
# finishes on --resume with the lineage it had (its exploits over MPI between two groups, or a copy
# within one group where both members ran there), and the usage errors.
set -u
BIN=${BUILD:-build}/bin/unet_train
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
fail() { echo "FAIL: $*"; exit 1; }

cat > "$T/pbt.ini" <<'INI'
[search]
learningrate = loguniform(1e-3, 1e-2)
beta2 = uniform(0.9, 0.999)
weight_decay = range(0, 4, 1)
augment = choice(false, true)
[fixed]
dims = 2
input_size = 32,32
filters = 8
depth = 2
batch_size = 8
toy_samples = 24
epochs = 6
const_learningrate = true
print_every = 1000
image_every = 0
[tune]
search = random
trials = 4
scheduler = pbt
perturbation_interval = 2
INI

# Usage errors: one line naming the flag, exit 2, before any training.
expect_usage() {  # expect_usage START_OF_MESSAGE ARGS...
    local want=$1; shift
    local msg rc
    msg=$("$BIN" "$@" 2>&1); rc=$?
    [ "$rc" -eq 2 ] && [ "$(echo "$msg" | wc -l)" -eq 1 ] && [[ "$msg" == "unet_train: $want"* ]] || fail "usage ($*): $rc $msg"
}
expect_usage "--scheduler: pbt starts from a random population" --tune "$T/pbt.ini" --search grid --logdir "$T/e1"
printf '[search]\naugment = choice(false, true)\n[fixed]\nepochs = 4\n' >"$T/choice.ini"
expect_usage "--scheduler: pbt needs a uniform, loguniform or range" --tune "$T/choice.ini" --search random --trials 2 \
  --scheduler pbt --logdir "$T/e2"
printf '[search]\nlearningrate = uniform(0.001, 0.01)\nfilters = range(4, 8, 4)\n[fixed]\nepochs = 4\n' >"$T/arch.ini"
expect_usage "--scheduler: pbt copies checkpoints between members, so filters" --tune "$T/arch.ini" --search random \
  --trials 2 --scheduler pbt --logdir "$T/e3"
expect_usage "--perturbation_interval: expected at least 1 epoch" --tune "$T/pbt.ini" --perturbation_interval 0 --logdir "$T/e4"
expect_usage "--perturbation_interval: 6 epochs leave no round boundary before --epochs 6" --tune "$T/pbt.ini" \
  --perturbation_interval 6 --logdir "$T/e5"
expect_usage "--pbt_quantile: expected a fraction in (0, 0.5]" --tune "$T/pbt.ini" --pbt_quantile 0.8 --logdir "$T/e6"

# The whole population: 3 rounds, one exploit (25% of 4) at each of the 2 round ends.
t0=$(date +%s.%N)
out=$(timeout 300 "${MPI[@]}" -np 5 "$BIN" --tune="$T/pbt.ini" --logdir "$T/run" 2>&1) || fail "pbt search: $out"
wall=$(echo "$(date +%s.%N) - $t0" | bc)
echo "$out" | grep -q "search: 4 trials (random), scheduler pbt, 4 groups of 1 rank" || fail "summary: $out"
echo "$out" | grep -q "search finished: 4 trials (4 completed" || fail "not finished: $out"
cost=$(echo "$out" | grep "^pbt: .* exploit steps") || fail "no exploit cost line: $out"
echo "tune_pbt: $cost; mpirun wall time ${wall} s"
# exploits_moved FILE MIN_OVER_MPI: in a search's output, each exploit moved the checkpoint from
# the group that trained the donor in that round to the group that trained the recipient: over MPI
# between two groups, a copy within one group; at least MIN_OVER_MPI of them over MPI.
exploits_moved() {
  python3 - "$1" "$2" <<'PYEOF'
import re, sys
group, mpi, seen = {}, 0, 0
for line in open(sys.argv[1]):
    m = re.search(r"member (\d+) round (\d+) \(epochs [\d-]+\) -> group (\d+)", line)
    if m:
        group[int(m.group(1)), int(m.group(2))] = int(m.group(3))
    if "copies member" not in line:
        continue
    m = re.search(r"round (\d+): member (\d+) .* copies member (\d+)'s checkpoint \((.*?), [\d.]+ kB in [\d.]+ s, "
                  r"checksum ([0-9a-f]{16})\)", line)
    assert m, line
    r, rec, don, how = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    gd, gr = group[don, r], group[rec, r]
    want = f"over MPI from group {gd} to group {gr}" if gd != gr else f"file copy within group {gd}"
    assert how == want, (line, want)
    mpi += gd != gr
    seen += 1
assert seen > 0 and mpi >= int(sys.argv[2]), (seen, mpi)
print(f"{mpi} of {seen}")
PYEOF
}
echo "$out" >"$T/run_out.txt"
n=$(exploits_moved "$T/run_out.txt" 2) || fail "exploits not moved between the groups' leaders: $out"
echo "tune_pbt: exploits over MPI: $n"
S=$T/run/tune/state.json
python3 - "$S" "$T/run/tune" <<'PYEOF' || fail "state.json: $(cat "$S")"
import json, re, sys
s = json.load(open(sys.argv[1])); d = sys.argv[2]
assert s["pbt"]["round"] == 2 and s["pbt"]["exploits"] == 2, s["pbt"]
copies = 0
for t in s["trials"]:
    assert t["status"] == "completed" and len(t["dice"]) == 6, t
    sch = [dict(p) for p in t["schedule"]]
    assert len(sch) == 3 and sch[-1] == dict(t["params"]), t
    for p in sch:  # every value inside the space
        assert 1e-3 <= float(p["learningrate"]) <= 1e-2 and 0.9 <= float(p["beta2"]) <= 0.999, p
        assert p["weight_decay"] in ("0", "1", "2", "3", "4") and p["augment"] in ("false", "true"), p
    copied = {l["round"]: l["from"] for l in t["lineage"]}
    for r in (1, 2):
        if r - 1 not in copied:
            assert sch[r] == sch[r - 1], (t["id"], "changed without an exploit")
    for r, donor in copied.items():
        copies += 1
        assert donor != t["id"]
        donor_dice = s["trials"][donor]["dice"][2 * r + 1]
        # the donor ranked above the recipient at the round's last epoch
        assert donor_dice >= t["dice"][2 * r + 1], (t["id"], donor, r)
        # the recipient's next round resumed from the copied checkpoint at the donor's step
        log = open(f"{d}/trial_{t['id']}/training.log").read()
        dlog = open(f"{d}/trial_{donor}/training.log").read()
        step = re.findall(rf"stopped early after epoch {2 * r + 2} at step (\d+)", dlog)
        assert step, (donor, r)
        assert re.search(rf"resumed from \S*trial_{t['id']}/checkpoint_latest.h5 at step {step[-1]} \(epoch {2 * r + 3},", log), (t["id"], r)
assert copies == 2, copies
PYEOF
grep -q "^schedule of the best member, trial [0-9]*:" "$T/run/tune/ranking.md" &&
  grep -q "^- round 2 (epochs 5-6): learningrate=" "$T/run/tune/ranking.md" || fail "ranking.md: $(cat "$T/run/tune/ranking.md")"
# TensorBoard (scripts/tensorboard_venv.sh): each member's hyperparameters over the rounds.
PY=$(scripts/tensorboard_venv.sh "${BUILD:-build}") || fail "cannot install TensorBoard (scripts/tensorboard_venv.sh)"
"$PY" - "$T/run" <<'PYEOF' || fail "TensorBoard's pbt scalars"
import json, math, sys
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import metadata as hp_meta
logdir = sys.argv[1]
s = json.load(open(f"{logdir}/tune/state.json"))
for t in s["trials"]:
    acc = ea.EventAccumulator(f"{logdir}/tune/trial_{t['id']}/pbt", size_guidance={ea.SCALARS: 0})
    acc.Reload()
    lr = [(e.step, e.value) for e in acc.Scalars("pbt/learningrate")]
    want = [(2 * r, float(dict(p)["learningrate"])) for r, p in enumerate(t["schedule"])]
    assert len(lr) == 3 and all(a[0] == b[0] and math.isclose(a[1], b[1], rel_tol=1e-6) for a, b in zip(lr, want)), (lr, want)
    assert "pbt/augment" not in acc.Tags()["scalars"]
    # The HParams session holds the last round's hyperparameters.
    run = ea.EventAccumulator(f"{logdir}/tune/trial_{t['id']}", size_guidance={ea.TENSORS: 0})
    run.Reload()
    start = hp_meta.parse_session_start_info_plugin_data(run.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    hp = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert math.isclose(hp["learning_rate"], float(dict(t["params"])["learningrate"]), rel_tol=1e-6), (t["id"], hp, t["params"])
    assert math.isclose(hp["beta2"], float(dict(t["params"])["beta2"]), rel_tol=1e-6), (t["id"], hp, t["params"])
PYEOF

# Resume mid-population: SIGTERM to every rank once round 0 has ended, then --resume auto. 12
# epochs (6 rounds), so that the signal lands well before the end.
timeout 300 "${MPI[@]}" -np 3 "$BIN" --tune="$T/pbt.ini" --epochs 12 --logdir "$T/cut" >"$T/out.txt" 2>&1 &
pid=$!
for _ in $(seq 1 900); do
    grep -q '"round": 1' "$T/cut/tune/state.json" 2>/dev/null && break
    sleep 0.1
done
grep -q '"round": 1' "$T/cut/tune/state.json" 2>/dev/null || fail "round 0 never ended: $(cat "$T/out.txt")"
kill -TERM $(pgrep -f "^[^ ]*unet_train .*--logdir $T/cut")
wait "$pid"; rc=$?
[ "$rc" -eq 0 ] && grep -q "search interrupted" "$T/out.txt" || fail "SIGTERM: $rc $(tail -5 "$T/out.txt")"
cp "$T/cut/tune/state.json" "$T/cut_state.json"
cp "$T/out.txt" "$T/cut_out.txt"  # which group ran which member before the signal
timeout 300 "${MPI[@]}" -np 3 "$BIN" --tune="$T/pbt.ini" --epochs 12 --logdir "$T/cut" --resume auto >"$T/out.txt" 2>&1 ||
  fail "resume: $(tail -20 "$T/out.txt")"
grep -q "search finished: 4 trials (4 completed" "$T/out.txt" || fail "resume did not finish: $(tail -20 "$T/out.txt")"
cat "$T/cut_out.txt" "$T/out.txt" >"$T/both_out.txt"
n=$(exploits_moved "$T/both_out.txt" 0) || fail "resumed search's exploits: $(cat "$T/out.txt")"
echo "tune_pbt: search on 2 groups, cut and resumed, exploits over MPI: $n"
python3 - "$T/cut_state.json" "$T/cut/tune/state.json" <<'PYEOF' || fail "resumed lineage: $(cat "$T/cut/tune/state.json")"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert 1 <= a["pbt"]["round"] < 5 and b["pbt"]["round"] == 5, (a["pbt"], b["pbt"])
assert any(t["status"] != "completed" for t in a["trials"]), "the signal came after the end"
assert b["pbt"]["exploits"] == 5, b["pbt"]
for x, y in zip(a["trials"], b["trials"]):
    assert y["lineage"][:len(x["lineage"])] == x["lineage"], (x["id"], x["lineage"], y["lineage"])
    assert y["schedule"][:a["pbt"]["round"] + 1] == x["schedule"][:a["pbt"]["round"] + 1], x["id"]
    assert y["status"] == "completed" and len(y["dice"]) == 12 and len(y["schedule"]) == 6, y
PYEOF
# The interrupted search's members continued from their checkpoints rather than starting over.
grep -q "resumed from" "$T"/cut/tune/trial_*/training.log || fail "no member continued from its checkpoint"
exit 0
