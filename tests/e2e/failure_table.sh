#!/usr/bin/env bash
# README's "What happens when ..." table, row by row. A row marked failure_table.sh is brought
# about here on real files and processes (damaged NIfTI and HDF5 files, tmpfs mounts that are full
# or read-only, mpirun jobs) and its line (the part in backticks) and exit code are checked; a row
# tested by another script must name a script that looks for the same line. Every row has to be
# covered and every case here has to have a row, so the table and the program cannot drift apart.
# Root only (the full-disk and read-only rows mount small tmpfs file systems); it unmounts them and
# removes everything it made, also on failure.
set -u
if [ "$(id -u)" -ne 0 ]; then echo "SKIPPED: needs root to mount the small tmpfs file systems of the full-disk rows"; exit 77; fi
BUILD=${BUILD:-build}
B=$(realpath "$BUILD/bin")
ROOT=$(pwd)
T=$(mktemp -d)
MOUNTS=()
cleanup() {
  local m
  for m in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do umount "$m" 2>/dev/null; done
  kill $(jobs -p) 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
cd "$T" || exit 1

# Fixtures: a small synthetic MSD folder, its 2D dataset and a checkpoint of a tiny model.
TINY=(--dims 2 --filters 4 --depth 2 --batch_size 4 --epochs 1 --steps 2)
LONG=(--dims 2 --filters 4 --depth 2 --batch_size 4 --epochs 1000 --steps 300 --checkpoint_every 1)  # until a disk fills
"$B/unet_prepare" --synthetic 4 --output_dir msd --synthetic_size 24,32,32 >/dev/null 2>&1 || fail "synthetic data"
"$B/unet_prepare" --source_dir msd --output d2.h5 --mode 2d --slice_size 32 >/dev/null 2>&1 || fail "prepare"
"$B/unet_train" --data d2.h5 "${TINY[@]}" --logdir ck >/dev/null 2>&1 || fail "fixture checkpoint"
IMG=msd/imagesTr/BRATS_001.nii.gz

tmpfs() {  # DIR SIZE [ro]
  mkdir -p "$1" && mount -t tmpfs -o "size=$2${3:+,$3}" tmpfs "$1" || fail "cannot mount a tmpfs on $1"
  MOUNTS+=("$T/$1")
}
# A copy of the MSD folder whose first image (or label) is changed by the Python lines given.
damaged_copy() {  # DIR FILE PYTHON (d: the file's uncompressed bytes, a bytearray)
  rm -rf "$1"; cp -r msd "$1"
  /usr/bin/python3 - "$1/$2" "$3" <<'PY' || fail "cannot damage $1/$2"
import gzip, struct, sys
path, code = sys.argv[1], sys.argv[2]
d = bytearray(gzip.open(path).read())
exec(code)
gzip.open(path, "wb").write(bytes(d))
PY
}
nibabel_edit() {  # FILE PYTHON (a: the array, img: the image; the result is saved from a)
  /usr/bin/python3 - "$1" "$2" <<'PY' || fail "cannot edit $1"
import sys, nibabel as nib, numpy as np
img = nib.load(sys.argv[1]); a = np.asarray(img.dataobj).copy()
exec(sys.argv[2])
nib.save(nib.Nifti1Image(a, img.affine), sys.argv[1])
PY
}
flip_in() {  # SRC DATASET OUT: a copy of SRC with one bit flipped in the middle of DATASET's data
  local off
  off=$(/usr/bin/python3 "$ROOT/tests/e2e/hdf5_mutate.py" --raw "$1" "$2") || fail "cannot locate $2 in $1"
  cp "$1" "$3"
  /usr/bin/python3 -c 'import sys; f = open(sys.argv[1], "r+b"); o = int(sys.argv[2]); f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x10]))' \
    "$3" "$off" || fail "cannot flip a bit in $3"
}
prepare() { "$B/unet_prepare" --source_dir "$1" --output "$2" --mode 2d --slice_size 32; }
# kept_checkpoint DIR: the run stopped with its latest checkpoint readable and no .tmp beside it.
kept_checkpoint() {
  /usr/bin/python3 -c 'import h5py, sys; assert int(h5py.File(sys.argv[1], "r")["integers"].attrs["step"]) >= 1' \
    "$1/checkpoint_latest.h5" 2>/dev/null || fail "no readable checkpoint kept in $1"
  ! ls "$1"/*.tmp >/dev/null 2>&1 || fail "a checkpoint's .tmp left in $1"
}
no_dataset() { [ ! -e "$1" ] && [ ! -e "$1.tmp" ] || fail "$1 or its .tmp left behind"; }

OUT=""; RC=0
run() { OUT=$("$@" 2>&1); RC=$?; }
# one_error_line PROGRAM OUTPUT: the output ends with the program's one error line, its only one
# (a damaged file is refused in one line, not with HDF5's error stack or a second complaint).
one_error_line() {
  [ "$(echo "$2" | grep -c "^$1: ")" -eq 1 ] && echo "$2" | tail -1 | grep -q "^$1: error: " ||
    fail "$1: not one error line at the end: $(echo "$2" | tail -3)"
}

# Brings about the row named by its first cell; sets OUT and RC, and checks what is kept.
bring_about() {
  case "$1" in
  "a truncated NIfTI image (unet_prepare)")
    damaged_copy m1 imagesTr/BRATS_001.nii.gz 'd = d[:len(d) // 2]'
    run prepare m1 o1.h5; no_dataset o1.h5 ;;
  "a bit flipped in a NIfTI header's dimensions")
    damaged_copy m2 imagesTr/BRATS_002.nii.gz 'd[42:44] = struct.pack("<h", -5)'
    run prepare m2 o2.h5; no_dataset o2.h5 ;;
  "a file that is not NIfTI under a \`.nii.gz\` name")
    rm -rf m3; cp -r msd m3; head -c 5000 /dev/urandom | gzip > m3/imagesTr/BRATS_003.nii.gz
    run prepare m3 o3.h5; no_dataset o3.h5 ;;
  "a NIfTI of a data type we do not read (complex)")
    damaged_copy m4 imagesTr/BRATS_003.nii.gz 'd[70:72] = struct.pack("<h", 32)'
    run prepare m4 o4.h5; no_dataset o4.h5 ;;
  "a label outside 0-3")
    rm -rf m5; cp -r msd m5; nibabel_edit m5/labelsTr/BRATS_001.nii.gz 'a[0, 0, 0] = 7; a = a.astype(np.uint8)'
    run prepare m5 o5.h5; no_dataset o5.h5 ;;
  "image and label shapes differ")
    rm -rf m6; cp -r msd m6; nibabel_edit m6/labelsTr/BRATS_001.nii.gz 'a = a[:, :16]'
    run prepare m6 o6.h5; no_dataset o6.h5 ;;
  "an HDF5 file from another program as \`--data\`")
    /usr/bin/python3 -c 'import h5py, numpy as np; h5py.File("other.h5", "w")["x"] = np.zeros(3)' || fail "h5py"
    run "$B/unet_train" --data other.h5 "${TINY[@]}" --logdir r7; [ ! -e r7 ] || fail "r7 made" ;;
  "a dataset of another format version")
    cp d2.h5 v99.h5; /usr/bin/python3 -c 'import h5py; h5py.File("v99.h5", "r+").attrs["format_version"] = 99' || fail "h5py"
    run "$B/unet_train" --data v99.h5 "${TINY[@]}" --logdir r8; [ ! -e r8 ] || fail "r8 made" ;;
  "a bit flipped in a prepared dataset's samples")
    flip_in d2.h5 /train/images flipped.h5
    # a whole epoch (no --steps): the damaged sample is then read whatever the order and the
    # loader's timing (with 2 steps it was met only when the read-ahead got to it first)
    run "$B/unet_train" --data flipped.h5 --dims 2 --filters 4 --depth 2 --batch_size 4 --epochs 1 --logdir r_flip ;;
  "a bit flipped in a checkpoint's parameters")
    flip_in ck/checkpoint_latest.h5 /arrays/params flipped_ck.h5
    run "$B/unet_predict" --checkpoint flipped_ck.h5 --input "$IMG" --output_dir p_flip
    [ ! -e p_flip/BRATS_001.nii.gz ] || fail "a mask from a damaged checkpoint"
    one_error_line unet_predict "$OUT" ;;
  "\`--resume\` with a checkpoint of another model")
    local sum; sum=$(md5sum < ck/checkpoint_latest.h5)
    run "$B/unet_train" --data d2.h5 --dims 2 --filters 8 --depth 2 --resume ck/checkpoint_latest.h5 --logdir r9
    [ "$(md5sum < ck/checkpoint_latest.h5)" = "$sum" ] || fail "the checkpoint changed" ;;
  "a truncated checkpoint (\`--resume\`, \`unet_predict\`, \`unet_visualize\`)")
    head -c 20000 ck/checkpoint_latest.h5 > trunc.h5
    run "${MPI[@]}" -np 2 "$B/unet_predict" --checkpoint trunc.h5 --input "$IMG" --output_dir p10
    [ "$RC" -ne 0 ] && [ "$(echo "$OUT" | grep -c "^unet_predict.*: error: ")" -eq 1 ] ||
      fail "unet_predict on a truncated checkpoint under mpirun: exit $RC, not one error line: $OUT"
    run "$B/unet_predict" --checkpoint trunc.h5 --input "$IMG" --output_dir p10
    [ "$RC" -eq 1 ] && [ ! -e p10 ] && one_error_line unet_predict "$OUT" ||
      fail "unet_predict on a truncated checkpoint: exit $RC: $OUT"
    run "$B/unet_visualize" --dataset d2.h5 --sample 0 --checkpoint trunc.h5 --out v10.gif
    [ "$RC" -eq 1 ] && [ ! -e v10.gif ] && one_error_line unet_visualize "$OUT" ||
      fail "unet_visualize on a truncated checkpoint: exit $RC: $OUT"
    # Under mpirun every rank reads it alike: rank 0 alone says so (once, not once per rank).
    run "${MPI[@]}" -np 2 "$B/unet_train" --resume trunc.h5 --logdir r10
    [ "$RC" -ne 0 ] && [ "$(echo "$OUT" | grep -c "^unet_train.*: error: ")" -eq 1 ] ||
      fail "--resume of a truncated checkpoint under mpirun: exit $RC, not one error line: $OUT"
    run "$B/unet_train" --resume trunc.h5 --logdir r10
    one_error_line unet_train "$OUT"; [ ! -e r10 ] || fail "r10 made" ;;
  "a damaged checkpoint of the first wave (no checksums), on which HDF5 itself crashes")
    # kept by the fuzzer: a mangled attribute table that HDF5 1.10.8 follows into a segfault
    run "$B/unet_predict" --checkpoint "$ROOT/tests/fuzz/regressions/checkpoint/first_wave_attribute_table_segv.h5" \
        --input "$IMG" --output_dir p_segv
    [ ! -e p_segv ] && one_error_line unet_predict "$OUT" || fail "p_segv made, or not one line: $OUT"
    local rc=$RC out=$OUT
    run "$B/unet_train" --resume "$ROOT/tests/fuzz/regressions/checkpoint/first_wave_attribute_table_segv.h5" --logdir r_segv
    [ "$RC" = "$rc" ] && [ ! -e r_segv ] || fail "--resume of it: exit $RC: $(echo "$OUT" | tail -1)"
    OUT=$out; RC=$rc ;;
  "a damaged checkpoint of the first wave whose metadata make HDF5 allocate gigabytes")
    # kept by the fuzzer: an 18 KB file that took unet_predict to 3.2 GB (1.7 GB inside HDF5, in
    # the child and again in the parent) before its one line; the child is now ended at its bound
    local kb
    kb=$(/usr/bin/python3 - "$B/unet_predict" "$ROOT/tests/fuzz/regressions/checkpoint/first_wave_huge_allocation.h5" \
        "$IMG" <<'PY'
import resource, subprocess, sys
r = subprocess.run([sys.argv[1], "--checkpoint", sys.argv[2], "--input", sys.argv[3], "--output_dir", "p_huge"],
                   capture_output=True, text=True)
open("p_huge.out", "w").write(r.stdout + r.stderr)
print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
    ) || fail "python3 around unet_predict"
    RC=${kb%% *}; kb=${kb##* }; OUT=$(cat p_huge.out)
    [ ! -e p_huge ] && one_error_line unet_predict "$OUT" || fail "p_huge made, or not one line: $OUT"
    [ "$kb" -lt 1048576 ] || fail "unet_predict peaked at $kb KB on an 18 KB checkpoint (want under 1 GiB)" ;;
  "a damaged dataset of the first wave (no checksums), on which HDF5 itself crashes")
    # kept by the fuzzer: a mangled global heap (the case ids) that HDF5 1.10.8 copies wildly from
    run "$B/unet_train" --data "$ROOT/tests/fuzz/regressions/hdf5_dataset/first_wave_global_heap_memcpy.h5" \
        "${TINY[@]}" --logdir r_heap
    [ ! -e r_heap ] && one_error_line unet_train "$OUT" || fail "r_heap made, or not one line: $OUT" ;;
  "a damaged dataset of the first wave whose chunk index puts a sample past the end of the file")
    # kept by the fuzzer: a chunk index entry of 4 GB in a 39 KB file, which HDF5 allocated
    run "$B/unet_train" --data "$ROOT/tests/fuzz/regressions/hdf5_dataset/first_wave_chunk_past_end.h5" \
        "${TINY[@]}" --logdir r_chunk
    [ ! -e r_chunk ] && one_error_line unet_train "$OUT" || fail "r_chunk made, or not one line: $OUT" ;;
  "a damaged dataset of the first wave whose chunk index gives an uncompressed sample fewer bytes than it holds")
    # kept by the fuzzer: HDF5 read 714 bytes and copied 4096 out of them (a heap overflow)
    run "$B/unet_train" --data "$ROOT/tests/fuzz/regressions/hdf5_dataset/first_wave_short_unfiltered_chunk.h5" \
        "${TINY[@]}" --logdir r_short
    [ ! -e r_short ] && one_error_line unet_train "$OUT" || fail "r_short made, or not one line: $OUT" ;;
  "a prepared dataset given as a checkpoint (\`--checkpoint\`, \`--resume\`)")
    run "$B/unet_train" --resume d2.h5 --logdir r10b
    [ "$RC" -eq 2 ] && [ ! -e r10b ] || fail "--resume of a dataset: exit $RC: $OUT"
    run "$B/unet_predict" --checkpoint d2.h5 --input "$IMG" --output_dir p10b; [ ! -e p10b ] || fail "p10b made" ;;
  "a settings file with an unknown key")
    printf 'filtres = 8\n' > bad_key.ini; run "$B/unet_train" --config bad_key.ini ;;
  "a settings file with a bad value")
    printf 'filters = eight\n' > bad_value.ini; run "$B/unet_train" --config bad_value.ini ;;
  "a flag or settings line holding \`%value%\` (or another of Boost's placeholders)")
    printf 'epochs = %%value%%\n' > placeholder.ini
    run timeout 20 "$B/unet_train" --config placeholder.ini
    [ "$RC" -ne 124 ] || fail "unet_train hung on a settings line holding %value%"
    local first=$RC out1=$OUT
    run timeout 20 "$B/unet_train" --epochs %value%
    [ "$RC" = "$first" ] || fail "the command line's %value%: exit $RC, the settings file's: $first ($out1)" ;;
  "flags that conflict (\`--patch\` for a 2D model)")
    run "$B/unet_train" --data d2.h5 --dims 2 --patch 32,32,32 ;;
  "a search space with an unknown distribution")
    printf '[search]\nlearningrate = lognormal(1e-4, 1e-2)\n' > bad.tune
    run "$B/unet_train" --tune bad.tune --data d2.h5 --logdir t14; [ ! -e t14 ] || fail "t14 made" ;;
  "a full disk while preparing")
    tmpfs full1 100k; run prepare msd full1/d.h5; no_dataset full1/d.h5 ;;
  "a full disk at a checkpoint (events and training.log share the disk)")
    # room for training.log, the lock and the event files so far, not for a checkpoint (96 KiB)
    tmpfs full2 48k; run "$B/unet_train" --data d2.h5 "${TINY[@]}" --logdir full2/run
    ! ls full2/run/*.tmp >/dev/null 2>&1 || fail "a checkpoint's .tmp left behind" ;;
  "a full disk while writing training.log")
    # training.log alone on a 4 KiB disk (a link into it), so that it is what fills up
    tmpfs full4 4k; mkdir -p tl; ln -s "$T/full4/training.log" tl/training.log
    run "$B/unet_train" --data d2.h5 "${LONG[@]}" --print_every 1 --logdir tl
    kept_checkpoint tl ;;
  "a full disk while writing TensorBoard event files")
    # the train/ event file alone on a 4 KiB disk: the epoch's histograms do not fit
    mkdir -p ev/train; tmpfs ev/train 4k
    run "$B/unet_train" --data d2.h5 "${LONG[@]}" --logdir ev
    echo "$OUT" | tail -1 | grep -q "ev/train/events\.out\.tfevents\.[^ ]*: write failed (No space left on device)$" ||
      fail "the event file's error is not the last line: $(echo "$OUT" | tail -2)"
    kept_checkpoint ev ;;
  "a full disk while predicting")
    tmpfs full3 8k
    run "$B/unet_predict" --checkpoint ck/checkpoint_latest.h5 --input "$IMG" --output_dir full3/p --probabilities
    [ -f full3/p/BRATS_001.nii.gz ] || fail "the mask written before the disk filled is gone"
    ! ls full3/p/*.tmp >/dev/null 2>&1 && [ ! -e full3/p/BRATS_001_prob.nii.gz ] || fail "a half-written file is left" ;;
  "a \`--logdir\` that cannot be written (read-only file system)")
    tmpfs ro 1m ro; run "$B/unet_train" --data d2.h5 "${TINY[@]}" --logdir ro/run ;;
  "\`--resume auto\` with no checkpoint in \`--logdir\`")
    run "$B/unet_train" --data d2.h5 "${TINY[@]}" --resume auto --logdir fresh
    [ -f fresh/checkpoint_latest.h5 ] || fail "no new run" ;;
  "a new run without \`--resume\` into a finished run's \`--logdir\`")
    local sum; sum=$(md5sum < ck/checkpoint_latest.h5)
    run "$B/unet_train" --data d2.h5 "${TINY[@]}" --logdir ck
    [ "$(md5sum < ck/checkpoint_latest.h5)" = "$sum" ] || fail "the finished run's checkpoint changed" ;;
  "ranks started with different settings")
    run timeout 60 "${MPI[@]}" -np 1 "$B/unet_train" --data d2.h5 "${TINY[@]}" --norm none --logdir mm : \
        -np 1 "$B/unet_train" --data d2.h5 "${TINY[@]}" --norm batch --logdir mm
    [ ! -e mm ] || fail "mm made" ;;
  "a worker killed (SIGKILL, out of memory)")
    "${MPI[@]}" -np 3 "$B/unet_train" --data d2.h5 --dims 2 --filters 4 --depth 2 --batch_size 4 --epochs 1000 \
        --steps 1000000 --checkpoint_every 5 --logdir killed > killed.out 2>&1 &
    local pid=$! victim
    for _ in $(seq 300); do [ -f killed/checkpoint_latest.h5 ] && break; sleep 0.2; done
    victim=$(pgrep -f "^[^ ]*unet_train .*--logdir killed" | tail -1)
    [ -n "$victim" ] || fail "no worker to kill"
    kill -KILL "$victim"; wait "$pid"; RC=$?; OUT=$(cat killed.out)
    [ "$RC" -ne 0 ] && RC=non-zero
    local step
    step=$(/usr/bin/python3 -c 'import h5py; print(int(h5py.File("killed/checkpoint_latest.h5", "r")["integers"].attrs["step"]))') ||
      fail "the checkpoint is unreadable after the kill"
    "$B/unet_train" --data d2.h5 --resume auto --logdir killed --steps $((step + 1)) >/dev/null 2>&1 &&
      grep -q "resumed from killed/checkpoint_latest.h5 at step $step" killed/training.log || fail "no resume after the kill" ;;
  "SIGTERM or Ctrl-C to plain \`mpirun\`")
    "${MPI[@]}" -np 2 "$B/unet_train" --data d2.h5 --dims 2 --filters 4 --depth 2 --batch_size 4 --epochs 1000 \
        --steps 1000000 --logdir sigmpi > sigmpi.out 2>&1 &
    local pid=$!
    for _ in $(seq 300); do grep -q "^step " sigmpi.out 2>/dev/null && break; sleep 0.2; done
    kill -TERM "$pid"; wait "$pid"; RC=$?; OUT=$(cat sigmpi.out) ;;
  *) return 1 ;;
  esac
}

rows=$(sed -n '/<!-- failure table: begin -->/,/<!-- failure table: end -->/p' "$ROOT/README.md" | grep '^| ' | tail -n +2)
[ "$(echo "$rows" | grep -c .)" -ge 25 ] || fail "the README's table has $(echo "$rows" | grep -c .) rows (want 25 or more)"
here=0 elsewhere=0
while IFS= read -r row <&3; do  # fd 3: mpirun reads stdin
  when=$(echo "$row" | awk -F ' [|] ' '{sub(/^[|] /, "", $1); print $1}')
  see=$(echo "$row" | awk -F ' [|] ' '{print $2}')
  want=$(echo "$row" | awk -F ' [|] ' '{print $3}')
  by=$(echo "$row" | awk -F ' [|] ' '{sub(/ [|]$/, "", $5); print $5}')
  fragment=$(echo "$see" | sed -n 's/^[^`]*`\([^`]*\)`.*/\1/p')
  if [ "$by" = failure_table.sh ]; then
    bring_about "$when" || fail "no case here for the README row '$when'"
    [ "$RC" = "$want" ] || fail "'$when': exit $RC, the README says $want: $(echo "$OUT" | tail -3)"
    if [ -n "$fragment" ]; then
      echo "$OUT" | grep -qF -- "$fragment" || fail "'$when': no '$fragment' in: $(echo "$OUT" | tail -3)"
    fi
    here=$((here + 1))
    echo "ok: $when -> exit $RC${fragment:+, '$fragment'}"
  else
    [ -f "$ROOT/tests/e2e/$by" ] || fail "'$when': tested by $by, which does not exist"
    [ -n "$fragment" ] && grep -qF -- "$fragment" "$ROOT/tests/e2e/$by" ||
      fail "'$when': $by does not look for '$fragment'"
    elsewhere=$((elsewhere + 1))
  fi
done 3<<<"$rows"
# Every case above has its row (a case whose row was renamed would otherwise go unseen).
cases=$(grep -c '^  "[^"]*")$' "$ROOT/tests/e2e/failure_table.sh")
[ "$cases" -eq "$here" ] || fail "$cases cases here, $here rows marked failure_table.sh in the README"
echo "$here rows brought about here, $elsewhere checked in the scripts that test them: ok"
