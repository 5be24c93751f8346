#!/usr/bin/env bash
# TensorBoard logs of real runs, read back by our own reader (tests/e2e/event_dump.cpp: CRCs of
# every record, first record) and by TensorBoard itself (installed from PyPI into build/tbvenv by
# scripts/tensorboard_venv.sh): its event loader sees exactly the events our reader sees; scalar
# values and steps match training.log; images decode as PNG of the written size; histogram counts
# are the parameter counts; the text and the hparams sessions come back; a running TensorBoard
# server lists both runs in its HParams tab with their status and val/dice. Also: a file cut in the
# middle of a record (a crash) is read up to its last whole record; under mpirun only rank 0
# writes; an unwritable event directory stops the job before training; a full disk (a file-size
# limit) during training stops it with one line naming the event file, and every file stays
# readable.
set -u
BUILD=${BUILD:-build}
BIN=$BUILD/bin/unet_train
fail() { echo "FAIL: $*"; exit 1; }

PY=$(scripts/tensorboard_venv.sh "$BUILD") || fail "cannot install TensorBoard (scripts/tensorboard_venv.sh)"
# A script of the environment whose first line names an interpreter that is gone (the environment
# was made through a sandbox's path, or the checkout moved) is pointed back at it by the script.
TB_SCRIPT=$(dirname "$PY")/tensorboard
first=$(head -n 1 "$TB_SCRIPT")
sed -i '1s|.*|#!/nonexistent/sandbox/build/tbvenv/bin/python3|' "$TB_SCRIPT"
scripts/tensorboard_venv.sh "$BUILD" >/dev/null || { sed -i "1s|.*|$first|" "$TB_SCRIPT"; fail "tensorboard_venv.sh on a moved environment"; }
"$TB_SCRIPT" --version >/dev/null 2>&1 || { sed -i "1s|.*|$first|" "$TB_SCRIPT"; fail "$TB_SCRIPT does not run after the repair"; }
DUMP=$BUILD/e2e/event_dump
SRC=tests/e2e/event_dump.cpp
[ -f "$BUILD/libunet.a" ] || make -j2 "$BUILD/libunet.a" >/dev/null || fail "cannot build $BUILD/libunet.a"
if [ ! -x "$DUMP" ] || [ "$SRC" -nt "$DUMP" ] || [ "$BUILD/libunet.a" -nt "$DUMP" ]; then
  mkdir -p "$BUILD/e2e"
  # shellcheck disable=SC2046
  g++ -std=c++17 -O1 -Iinclude -I"$BUILD/gen" "$SRC" "$BUILD/libunet.a" -o "$DUMP" $(pkg-config --libs protobuf) \
      || fail "cannot compile $SRC"
fi

T=$(mktemp -d /tmp/unet_tensorboard_XXXXXX)
TB_PID=
cleanup() { [ -n "$TB_PID" ] && kill "$TB_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
export OMP_NUM_THREADS=2
SMALL=(--filters 8 --depth 2 --batch_size 4 --toy_samples 24 --learningrate 0.003 --const_learningrate --loss dice
       --print_every 2 --image_every 4)

"$BIN" --logdir "$T/runs/2d" --dims 2 --input_size 32,32 --epochs 3 "${SMALL[@]}" 2>"$T/2d.err" \
  || { cat "$T/2d.err"; fail "2D run"; }
"$BIN" --logdir "$T/runs/3d" --dims 3 --input_size 16,16,16 --epochs 2 --norm batch "${SMALL[@]}" 2>"$T/3d.err" \
  || { cat "$T/3d.err"; fail "3D run"; }

# Our reader: every file intact, brain.Event:2 first; its dumps are compared with TensorBoard's below.
for run in 2d 3d; do
  for sub in "" train validation; do
    files=("$T/runs/$run/$sub"/events.out.tfevents.*)
    [ ${#files[@]} -eq 1 ] && [ -f "${files[0]}" ] || fail "$run/$sub: expected one event file, found ${files[*]}"
    "$DUMP" "${files[0]}" >"$T/dump_${run}_${sub:-session}.txt" || fail "$run/$sub: our reader: $(head -3 "$T/dump_${run}_${sub:-session}.txt")"
    grep -qx "state clean" "$T/dump_${run}_${sub:-session}.txt" || fail "$run/$sub: not clean"
    grep -qx "first brain.Event:2" "$T/dump_${run}_${sub:-session}.txt" || fail "$run/$sub: first record"
  done
done

"$PY" - "$T" <<'PY' || fail "TensorBoard's loaders"
import glob, io, os, re, sys
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.hparams import metadata as hp_meta, api_pb2

T = sys.argv[1]
ALL = {ea.SCALARS: 0, ea.IMAGES: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0}

def load(path):
    acc = ea.EventAccumulator(path, size_guidance=ALL)
    acc.Reload()
    return acc

def tb_lines(path):
    """TensorBoard's own record reader and Event message, printed like event_dump."""
    events = [event_pb2.Event.FromString(r) for r in event_file_loader.RawEventFileLoader(path).Load()]
    out = []
    for e in events:
        for v in e.summary.value:
            kind = v.WhichOneof("value")
            if kind == "image": d = f"image\t{v.image.width}x{v.image.height}"
            elif kind == "histo": d = f"histogram\t{v.histo.num:.0f}"
            elif kind == "tensor": d = f"tensor\t{v.metadata.plugin_data.plugin_name}"
            else: d = "scalar\t%.9g" % v.simple_value
            out.append(f"{e.step}\t{v.tag}\t{d}")
    return len(events), events[0].file_version, out

for run in ("2d", "3d"):
    r = f"{T}/runs/{run}"
    # 1. TensorBoard's loader reads exactly the records and values our reader read.
    for sub in ("", "train", "validation"):
        (path,) = glob.glob(f"{r}/{sub}/events.out.tfevents.*".replace("//", "/"))
        n, first, lines = tb_lines(path)
        ours = open(f"{T}/dump_{run}_{sub or 'session'}.txt").read().splitlines()
        assert ours[0] == f"records {n}", (run, sub, ours[0], n)
        assert first == "brain.Event:2"
        assert ours[3:] == lines, (run, sub, [x for x in zip(ours[3:], lines) if x[0] != x[1]][:3])
    log = open(f"{r}/training.log").read()
    train, val, session = load(f"{r}/train"), load(f"{r}/validation"), load(r)
    # 2. Scalars: values and steps as training.log printed them.
    steps = [(int(s), float(l), float(d)) for s, l, d in re.findall(r" step (\d+) .*?loss ([\d.]+)\s+dice ([\d.]+)", log)]
    assert steps, "no step lines"
    got = train.Scalars("train/loss")
    assert [e.step for e in got] == [s for s, _, _ in steps], ([e.step for e in got], steps)
    for e, (s, l, d) in zip(got, steps):
        assert abs(e.value - l) < 6e-5, (s, e.value, l)
    for e, (s, l, d) in zip(train.Scalars("train/dice"), steps):
        assert abs(e.value - d) < 6e-5, (s, e.value, d)
    for tag in ("learning_rate", "perf/samples_per_sec", "perf/step_time", "perf/comm_fraction", "perf/data_wait_fraction"):
        assert [e.step for e in train.Scalars(tag)] == [s for s, _, _ in steps], tag
    assert all(abs(e.value - 0.003) < 1e-9 for e in train.Scalars("learning_rate"))
    assert all(e.value > 0 for e in train.Scalars("perf/samples_per_sec"))
    epochs = re.findall(r"val loss ([\d.]+) dice ([\d.]+) sensitivity ([\d.]+) specificity ([\d.]+)", log)
    for i, tag in enumerate(("val/loss", "val/dice", "val/sensitivity", "val/specificity")):
        got = [e.value for e in val.Scalars(tag)]
        assert len(got) == len(epochs) and all(abs(g - float(x[i])) < 6e-5 for g, x in zip(got, epochs)), (tag, got, epochs)
    # 3. Images: PNGs of the size the events say (a 32x32 or 16x16 slice enlarged to 128).
    assert val.Tags()["images"] == ["images/input", "images/ground_truth", "images/prediction", "images/overlay"], val.Tags()["images"]
    for tag in val.Tags()["images"]:
        for e in val.Images(tag):
            img = Image.open(io.BytesIO(e.encoded_image_string))
            assert img.format == "PNG" and img.size == (e.width, e.height) == (128, 128), (tag, img.size, e.width, e.height)
    pictures = [e.step for e in val.Images("images/prediction")]
    assert pictures == sorted(set(pictures)) and 4 in pictures, pictures
    # 4. Histograms: one per parameter tensor and epoch; their counts add up to the parameter count.
    params = int(re.search(r"(\d+) parameters", open(f"{T}/{run}.err").read()).group(1))
    n_epochs = len(epochs)
    for kind in ("weights", "gradients"):
        tags = [t for t in train.Tags()["histograms"] if t.startswith(kind + "/")]
        assert tags, kind
        for k in range(n_epochs):
            total = sum(train.Histograms(t)[k].histogram_value.num for t in tags)
            assert total == params, (run, kind, k, total, params)
        h = train.Histograms(tags[0])[-1].histogram_value
        assert sum(h.bucket) == h.num and h.min <= h.max
    # 5. Text: the resolved configuration and the command line.
    config = train.Tensors("config/resolved")[0].tensor_proto.string_val[0].decode()
    assert "filters = 8" in config and f"dims = {run[0]}" in config, config
    command = train.Tensors("config/command_line")[0].tensor_proto.string_val[0].decode()
    assert f"--logdir {T}/runs/{run}" in command, command
    # 6. HParams session, parsed by the HParams plugin's own code.
    start = hp_meta.parse_session_start_info_plugin_data(
        session.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    end = hp_meta.parse_session_end_info_plugin_data(
        session.SummaryMetadata("_hparams_/session_end_info").plugin_data.content)
    hp = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert hp["dims"] == int(run[0]) and hp["filters"] == 8 and hp["learning_rate"] == 0.003 and hp["loss"] == "dice", hp
    assert hp["norm"] == ("batch" if run == "3d" else "none") and hp["optimizer"] == "adam" and hp["amsgrad"] is False, hp
    assert len(hp) == 15 and hp["labels"] == "wt" and hp["objective"] == "mean", sorted(hp)
    assert end.status == api_pb2.STATUS_SUCCESS, end
print("TensorBoard's loaders agree")
PY

# The HParams tab of a running TensorBoard (its default data provider) lists both runs.
PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$PY" -m tensorboard.main --logdir "$T/runs" --host 127.0.0.1 --port "$PORT" >"$T/tb.log" 2>&1 &
TB_PID=$!
"$PY" - "$PORT" "$T" <<'PY' || { tail -20 "$T/tb.log"; fail "TensorBoard's HParams tab"; }
import json, re, sys, time, urllib.request
port, T = sys.argv[1], sys.argv[2]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=10))
request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
           "colParams": [{"hparam": "dims"}, {"metric": {"tag": "val/dice", "group": "validation"}}],
           "startIndex": 0, "sliceSize": 100}
groups = []
for _ in range(60):  # the server loads the logdir in the background
    try:
        groups = post("/data/plugin/hparams/session_groups", request).get("sessionGroups", [])
        if len(groups) == 2 and all(g.get("metricValues") for g in groups):
            break
    except OSError:
        pass
    time.sleep(1)
by_name = {g["name"]: g for g in groups}
assert sorted(by_name) == ["2d", "3d"], groups
for run in ("2d", "3d"):
    g = by_name[run]
    assert g["hparams"]["dims"] == int(run[0]), g["hparams"]
    assert g["sessions"][0]["status"] == "STATUS_SUCCESS", g["sessions"]
    dice = [m["value"] for m in g["metricValues"] if m["name"] == {"tag": "val/dice", "group": "validation"}]
    last = float(re.findall(r"val loss [\d.]+ dice ([\d.]+)", open(f"{T}/runs/{run}/training.log").read())[-1])
    assert len(dice) == 1 and abs(dice[0] - last) < 6e-5, (run, dice, last)
experiment = post("/data/plugin/hparams/experiment", {"experimentName": ""})
names = {h["name"] for h in experiment["hparamInfos"]}
assert {"learning_rate", "optimizer", "beta1", "beta2", "amsgrad", "batch_size", "filters", "depth", "norm", "dropout",
        "loss", "upsampling", "dims", "labels", "objective"} == names, names
print("HParams tab: 2 sessions")
PY
kill "$TB_PID"; wait "$TB_PID" 2>/dev/null; TB_PID=

# A crash in the middle of a record: both readers keep every whole record before it.
mkdir -p "$T/cut/run"
src=("$T/runs/2d/train"/events.out.tfevents.*)
cp "${src[0]}" "$T/cut/run/"
cut_file=("$T/cut/run"/events.out.tfevents.*)
whole=$(sed -n 's/^records //p' "$T/dump_2d_train.txt")
truncate -s -9 "${cut_file[0]}"
"$DUMP" "${cut_file[0]}" >"$T/cut.txt" || fail "our reader on a cut file: $(head -2 "$T/cut.txt")"
grep -qx "state torn" "$T/cut.txt" && grep -qx "records $((whole - 1))" "$T/cut.txt" || fail "our reader: $(head -2 "$T/cut.txt")"
"$PY" - "${cut_file[0]}" "$((whole - 1))" <<'PY' || fail "TensorBoard on a cut file"
import sys
from tensorboard.backend.event_processing import event_accumulator as ea, event_file_loader
events = list(event_file_loader.EventFileLoader(sys.argv[1]).Load())
assert len(events) == int(sys.argv[2]), (len(events), sys.argv[2])
acc = ea.EventAccumulator(sys.argv[1].rsplit("/", 1)[0], size_guidance={ea.SCALARS: 0})
acc.Reload()
assert acc.Scalars("train/loss"), "no scalars"
PY

# Under mpirun (rank 0 the parameter server) only rank 0 writes: one file per directory.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np 3 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 "$BIN" --logdir "$T/mpi" --dims 2 --input_size 32,32 \
  --epochs 2 "${SMALL[@]}" >/dev/null 2>&1 || fail "mpirun run"
for sub in "" train validation; do
  files=("$T/mpi/$sub"/events.out.tfevents.*)
  [ ${#files[@]} -eq 1 ] || fail "mpi/$sub: ${#files[@]} event files"
  "$DUMP" "${files[0]}" >"$T/mpi.txt" && grep -qx "state clean" "$T/mpi.txt" || fail "mpi/$sub unreadable"
done
grep -q "images/overlay" <("$DUMP" "$T/mpi/validation"/events.out.tfevents.*) || fail "mpi: no pictures from the server"
# Two parameter servers, each owning a shard: rank 0's histograms still cover every tensor's real
# gradient (no all-zero shard of the other server's buckets).
mpirun -np 4 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 "$BIN" --logdir "$T/mpi2" --num_ps 2 --bucket_mb 0.01 \
  --dims 2 --input_size 32,32 --epochs 1 "${SMALL[@]}" >/dev/null 2>&1 || fail "mpirun --num_ps 2 run"
"$PY" - "$T/mpi2/train" <<'PY' || fail "gradient histograms with --num_ps 2"
import sys
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.HISTOGRAMS: 0}); acc.Reload()
tags = [t for t in acc.Tags()["histograms"] if t.startswith("gradients/")]
zero = [t for t in tags if acc.Histograms(t)[-1].histogram_value.sum_squares == 0]
assert len(tags) > 10 and not zero, f"all-zero gradients on rank 0: {zero}"
PY

# An event directory that cannot be created stops the job before the first step, naming it.
mkdir -p "$T/blocked" && touch "$T/blocked/train"
out=$("$BIN" --logdir "$T/blocked" --dims 2 --input_size 32,32 --epochs 1 "${SMALL[@]}" 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "blocked event directory: exit $rc: $out"
echo "$out" | grep -q "unet_train: error: $T/blocked/train/events.out.tfevents.*: cannot create the event file" \
  || fail "blocked event directory message: $out"
echo "$out" | grep -q "^step " && fail "blocked event directory: training ran: $out"

# The disk fills up during the run (a 600 KiB file-size limit; the event file of the training run
# grows past it, checkpoints stay under it): the run stops as on a failed checkpoint, with one line
# naming the event file and the error, exit 1; its checkpoint and every event file stay whole, and
# TensorBoard reads what was written before.
out=$(trap '' XFSZ; ulimit -f 600; "$BIN" --logdir "$T/full" --dims 2 --input_size 32,32 --epochs 12 "${SMALL[@]}" 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "full disk: exit $rc: $(echo "$out" | tail -5)"
echo "$out" | tail -1 | grep -q "^unet_train: error: $T/full/train/events\.out\.tfevents\.[^ ]*: write failed (File too large)$" ||
  fail "full disk: the last line is not the event file's error: $(echo "$out" | tail -2)"
[ "$(echo "$out" | grep -c "^unet_train: ")" -eq 1 ] || fail "full disk: more than one error line: $(echo "$out" | grep "^unet_train: ")"
echo "$out" | grep -q "^done: " && fail "full disk: training went on to the end"
ls "$T/full"/checkpoint_*.h5 >/dev/null 2>&1 || fail "full disk: no checkpoint kept"
for f in "$T/full"/events.out.tfevents.* "$T/full"/*/events.out.tfevents.*; do
  "$DUMP" "$f" >"$T/full.txt" && grep -qx "state clean" "$T/full.txt" || fail "full disk: $f: $(head -2 "$T/full.txt")"
done
"$PY" - "$T/full" <<'PY' || fail "TensorBoard after a full disk"
import sys
from tensorboard.backend.event_processing import event_accumulator as ea
train = ea.EventAccumulator(sys.argv[1] + "/train", size_guidance={ea.SCALARS: 0}); train.Reload()
val = ea.EventAccumulator(sys.argv[1] + "/validation", size_guidance={ea.SCALARS: 0}); val.Reload()
assert train.Scalars("train/loss") and 1 <= len(val.Scalars("val/dice")) < 12, len(val.Scalars("val/dice"))
PY
echo ok
