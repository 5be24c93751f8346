#!/usr/bin/env bash
# Damaged HDF5 files, as a failing disk, a bad copy or a hostile user hands them over (issue 17):
# seeded random bit flips and byte changes (tests/e2e/hdf5_mutate.py; half of them on HDF5's
# metadata, where the library itself is weakest) in copies of a small prepared dataset and of a
# checkpoint. unet_train runs on each copy under timeout: one epoch on a damaged dataset, --resume
# of a damaged checkpoint for two more steps. Every run must end by itself, either
#   - accepted: exit 0, and the run's checkpoint bit-identical to the same run on the intact file
#     (the damage hit bytes nothing reads, never values that were then trained on), or
#   - refused: a non-zero exit whose last line is the one error line "unet_train: ...";
# a signal (exit >= 128), a hang (124), HDF5's own error stack, an error of several lines or an
# accepted run with another result fails the test.
# Aimed damage must be refused with exit 1 and one line naming the file (a damaged file is found
# while reading, not a usage error): a flip inside the checkpoint's parameters (stored
# uncompressed: only the Fletcher32 checksum can see it) given to unet_train --resume,
# unet_predict --checkpoint and unet_visualize --checkpoint, naming /arrays/params; a flip inside
# a training image and inside a validation mask, naming the dataset; and the checkpoint cut in
# half, given to each of the three programs.
#   HDF5_BITFLIPS=N (default 60 per file), HDF5_BITFLIPS_SEED=S (default 17),
#   HDF5_BITFLIPS_KEEP=DIR keeps the copies that failed there (to replay them).
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build}/bin
PY=/usr/bin/python3
MUTATE=$(pwd)/tests/e2e/hdf5_mutate.py
N=${HDF5_BITFLIPS:-60}
SEED=${HDF5_BITFLIPS_SEED:-17}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
for b in unet_prepare unet_train; do [ -x "$B/$b" ] || fail "$B/$b missing (make)"; done
"$PY" -c 'import h5py' 2>/dev/null || { echo "SKIPPED: h5py is not installed (make deps)"; exit 77; }

# A small 2D dataset (6 + 6 slices of 16 x 16) and a checkpoint of a tiny model trained on it.
"$B"/unet_prepare --synthetic 2 --output_dir "$T/msd" --synthetic_size 8,32,32 --seed 3 >/dev/null 2>&1 \
  || fail "synthetic dataset"
"$B"/unet_prepare --source_dir "$T/msd" --output "$T/d.h5" --mode 2d --slice_size 16 --split 0.5,0.5,0 \
  >/dev/null 2>&1 || fail "prepare"
TRAIN=(--dims 2 --filters 4 --depth 1 --batch_size 4 --print_every 1000)
run_dataset() {  # run_dataset FILE TAG: one epoch on a (damaged) dataset
  timeout -k 5 30 "$B"/unet_train "${TRAIN[@]}" --logdir "$T/r_$2" --data "$1" --epochs 1 \
    >"$T/$2.out" 2>"$T/$2.err"
}
run_checkpoint() {  # run_checkpoint FILE TAG: two more steps from a (damaged) checkpoint
  timeout -k 5 30 "$B"/unet_train --resume "$1" --logdir "$T/r_$2" --steps 4 >"$T/$2.out" 2>"$T/$2.err"
}
# The reference results: the same runs on the intact files.
run_dataset "$T/d.h5" ref_dataset || { tail -3 "$T/ref_dataset.err"; fail "training on the intact dataset"; }
CKPT=$T/r_ref_dataset/checkpoint_latest.h5
[ -f "$CKPT" ] || fail "no checkpoint"
run_checkpoint "$CKPT" ref_checkpoint || { tail -3 "$T/ref_checkpoint.err"; fail "--resume of the intact checkpoint"; }

one_line() {  # one_line ERRFILE [PROGRAM]: the only "PROGRAM:" line (unet_train's) is the last line
  local p=${2:-unet_train}
  [ "$(grep -c "^$p: " "$1")" -eq 1 ] && tail -1 "$1" | grep -q "^$p: "
}
run_predict() {  # run_predict FILE TAG: unet_predict of one case with a (damaged) checkpoint
  timeout -k 5 30 "$B"/unet_predict --checkpoint "$1" --input "$T/msd/imagesTr/BRATS_001.nii.gz" \
    --output_dir "$T/p_$2" >"$T/$2.out" 2>"$T/$2.err"
}
run_visualize() {  # run_visualize FILE TAG: a sample's picture with a (damaged) checkpoint's prediction
  timeout -k 5 30 "$B"/unet_visualize --dataset "$T/d.h5" --sample 0 --checkpoint "$1" --out "$T/$2.gif" \
    >"$T/$2.out" 2>"$T/$2.err"
}

accepted=0 refused=0 crashed=0
problems=()
: >"$T/accepted.list"
# check KIND NAME HOW RC: classifies the run of KIND (dataset | checkpoint) on copy NAME. The
# progress lines go to stderr too; a refusal is one line "unet_train: ..." at the end (and no
# other such line, nor HDF5's own error stack). Accepted runs are compared afterwards.
check() {
  local kind=$1 name=$2 how=$3 rc=$4 tag=${1:0:1}_$2 n=${#problems[@]}
  local err=$T/$tag.err what="$1 $2 ($3)"
  if [ "$rc" -eq 124 ] || [ "$rc" -ge 128 ]; then
    crashed=$((crashed + 1))
    problems+=("$what: exit $rc ($([ "$rc" -eq 124 ] && echo hang || echo "signal $((rc - 128))")): $(tail -1 "$err")")
  elif grep -q "HDF5-DIAG" "$err"; then
    crashed=$((crashed + 1))
    problems+=("$what: exit $rc, HDF5's error stack printed: $(grep -m1 -A2 HDF5-DIAG "$err" | tr '\n' '|')")
  elif [ "$rc" -eq 0 ]; then
    accepted=$((accepted + 1))
    echo "$T/r_ref_$kind/checkpoint_latest.h5 $T/r_$tag/checkpoint_latest.h5 $kind $name ($how)" >>"$T/accepted.list"
  elif ! one_line "$err"; then
    crashed=$((crashed + 1))
    problems+=("$what: exit $rc without one clear last line: $(tail -3 "$err" | tr '\n' '|')")
  else
    refused=$((refused + 1))
  fi
  if [ ${#problems[@]} -gt "$n" ] && [ -n "${HDF5_BITFLIPS_KEEP:-}" ]; then
    mkdir -p "$HDF5_BITFLIPS_KEEP" && cp "$T/m${kind:0:1}/$name" "$HDF5_BITFLIPS_KEEP/${kind}_$name"
  fi
}

# ---- aimed: one flipped bit in the middle of a dataset's stored bytes must be refused with one
# line naming the copy and the dataset, exit 1
aim_failures=()
aimed() {  # aimed SRC DATASET RUNNER TAG [PROGRAM]
  local src=$1 ds=$2 runner=$3 tag=$4 program=${5:-unet_train} off rc
  off=$("$PY" "$MUTATE" --raw "$src" "$ds") || fail "cannot locate $ds in $src"
  cp "$src" "$T/$tag.h5"
  "$PY" -c 'import sys; p, o = sys.argv[1], int(sys.argv[2]); f = open(p, "r+b"); f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x10]))' \
    "$T/$tag.h5" "$off"
  "$runner" "$T/$tag.h5" "$tag"; rc=$?
  [ "$rc" -eq 1 ] && one_line "$T/$tag.err" "$program" && tail -1 "$T/$tag.err" | grep -q "$T/$tag.h5: $ds" \
    || aim_failures+=("$program: a flipped bit in $ds of a copy of $(basename "$src"): exit $rc, last line: $(tail -1 "$T/$tag.err")")
}
aimed "$CKPT" /arrays/params run_checkpoint aim_params
aimed "$CKPT" /arrays/params run_predict aim_params_predict unet_predict
aimed "$CKPT" /arrays/params run_visualize aim_params_visualize unet_visualize
aimed "$T/d.h5" /train/images run_dataset aim_images
aimed "$T/d.h5" /val/masks run_dataset aim_masks
# A checkpoint cut in half (a copy interrupted): exit 1, one line naming the file.
head -c $(($(stat -c %s "$CKPT") / 2)) "$CKPT" >"$T/half.h5"
for pair in run_checkpoint:unet_train run_predict:unet_predict run_visualize:unet_visualize; do
  runner=${pair%%:*} program=${pair##*:}
  "$runner" "$T/half.h5" "half_$program"; rc=$?
  [ "$rc" -eq 1 ] && one_line "$T/half_$program.err" "$program" && tail -1 "$T/half_$program.err" | grep -q "$T/half.h5: " \
    || aim_failures+=("$program: a checkpoint cut in half: exit $rc, last line: $(tail -1 "$T/half_$program.err")")
done

# ---- random: N mutations of each file
start=$(date +%s)
"$PY" "$MUTATE" "$T/d.h5" "$T/md" "$N" "$SEED" >"$T/md.list" || fail "mutating the dataset"
"$PY" "$MUTATE" "$CKPT" "$T/mc" "$N" "$((SEED + 1))" >"$T/mc.list" || fail "mutating the checkpoint"
while read -r name how; do
  run_dataset "$T/md/$name" "d_$name"; check dataset "$name" "$how" $?
done <"$T/md.list"
while read -r name how; do
  run_checkpoint "$T/mc/$name" "c_$name"; check checkpoint "$name" "$how" $?
done <"$T/mc.list"

# Accepted means unchanged: every array and counter of the accepted runs' checkpoints is
# bit-identical to the reference run's.
changed=$("$PY" - "$T/accepted.list" <<'PY'
import sys, h5py
def load(p):
    with h5py.File(p, "r") as f:
        arrays = {k: f["arrays"][k][()].tobytes() for k in f["arrays"]}
        return arrays, {k: int(v) for k, v in f["integers"].attrs.items()}
refs = {}
for line in open(sys.argv[1]):
    ref, got, what = line.split(" ", 2)
    refs.setdefault(ref, load(ref))
    try:
        a, i = load(got)
    except Exception as e:
        print(f"{what.strip()}: accepted, but its checkpoint does not read ({e})")
        continue
    ra, ri = refs[ref]
    diff = sorted(k for k in set(ra) | set(a) if ra.get(k) != a.get(k))
    diff += sorted(k for k in ("step", "epoch", "epoch_step", "optimizer_step") if ri.get(k) != i.get(k))
    if diff:
        print(f"{what.strip()}: accepted, and trained to another result ({', '.join(diff)} differ)")
PY
) || fail "comparing the accepted runs"
if [ -n "$changed" ]; then
  while IFS= read -r line; do problems+=("$line"); done <<<"$changed"
fi

echo "$((2 * N)) damaged files (seed $SEED, $(($(date +%s) - start)) s): $accepted accepted ($(echo -n "$changed" | grep -c .) of them with another result), $refused refused with one line, $crashed crashed, hung or refused unclearly"
[ ${#problems[@]} -gt 0 ] && printf '  %s\n' "${problems[@]}"
[ ${#aim_failures[@]} -gt 0 ] && printf '  %s\n' "${aim_failures[@]}"
[ ${#problems[@]} -eq 0 ] && [ ${#aim_failures[@]} -eq 0 ] ||
  fail "${#problems[@]} of $((2 * N)) damaged files crashed, hung, were refused without one clear line or" \
    "changed the result; ${#aim_failures[@]} of 8 aimed damages were not refused with exit 1 and one line naming the file"
echo ok
