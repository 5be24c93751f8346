#!/usr/bin/env bash
# make bench: whole-case inference, ours (unet_predict) against PyTorch + MONAI's
# sliding_window_inference (bench/torch_predict_bench.py) with the same model weights, roi, overlap
# 0.5, gaussian blending and window batch 1 on the same cores, side by side in one run, on a
# synthetic full-size case (4 x 240 x 240 x 155). Models: `3d` (filters 32..256, 3 pools, 64^3
# windows) and `seed3d` (filters 8..64, 3 pools, one 152 x 240 x 240 window), each with and
# without --mirror (`3d --mirror` is 8 x 196 windows, about 20 minutes for us alone on 2 cores:
# only with PREDICT_BENCH_MIRROR3D=1). Prints a Markdown table, also to $BUILD/predict_bench.md.
#   bench/predict_bench.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
THREADS=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS OMP_PROC_BIND=${OMP_PROC_BIND:-close} OMP_PLACES=${OMP_PLACES:-cores}
PY=$(scripts/reference_venv.sh "$BUILD" | tail -1)
BIN=$BUILD/bin
W=$BUILD/predict_bench
mkdir -p "$W"
[ -d "$W/msd" ] || "$BIN/unet_prepare" --synthetic 2 --output_dir "$W/msd" --synthetic_size 155,240,240 >/dev/null 2>&1
[ -f "$W/msd3d.h5" ] || "$BIN/unet_prepare" --source_dir "$W/msd" --output "$W/msd3d.h5" --mode 3d --split 0.5,0.5,0 >/dev/null 2>&1
declare -A MODEL=([3d]="--filters 32 --depth 3 --patch 64,64,64 --input_size 64,64,64"
                  [seed3d]="--filters 8 --depth 3 --input_size 152,240,240")
declare -A ROI=([3d]=64,64,64 [seed3d]=152,240,240)
declare -A FILTERS=([3d]=32 [seed3d]=8)
IMG=$W/msd/imagesTr/BRATS_001.nii.gz
out="$BUILD/predict_bench.md"
{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $THREADS threads; one 4 x 240 x 240 x 155 case, overlap 0.5, gaussian, window batch 1"
  echo
  echo "| model | mirror | ours s/case | PyTorch+MONAI s/case | speed ratio | ours peak RSS MiB | PyTorch+MONAI peak RSS MiB | memory ratio |"
  echo "|---|---|---|---|---|---|---|---|"
} | tee "$out"
for m in 3d seed3d; do
  ck=$W/run_$m/checkpoint_latest.h5
  # one training step: real weights of the right shapes (speed does not depend on their values)
  [ -f "$ck" ] || "$BIN/unet_train" --dims 3 --data "$W/msd3d.h5" ${MODEL[$m]} --batch_size 1 --steps 1 --epochs 1 \
      --logdir "$W/run_$m" >/dev/null 2>&1
  for mirror in "" --mirror; do
    [ "$m$mirror" = "3d--mirror" ] && [ "${PREDICT_BENCH_MIRROR3D:-0}" != 1 ] && continue
    ours=$("$BIN/unet_predict" --checkpoint "$ck" --input "$IMG" --output_dir "$W/out_$m" $mirror 2>/dev/null |
           sed -n 's/.*cases in \([0-9.]*\) s .*peak RSS \([0-9]*\) MiB.*/\1 \2/p')
    theirs=$("$PY" bench/torch_predict_bench.py "$ck" "$IMG" "$W/torch_$m.nii.gz" --filters ${FILTERS[$m]} --depth 3 \
             --roi ${ROI[$m]} --num_threads "$THREADS" $mirror 2>/dev/null | tail -1)
    read -r os orss <<<"$ours"
    ts=$(echo "$theirs" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
    trss=$(echo "$theirs" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_mib"])')
    label=no; [ -z "$mirror" ] || label=yes
    "$PY" -c "print('| $m | $label | $os | $ts | %.2fx | $orss | $trss | %.2f |' % ($ts / $os, $orss / $trss))" | tee -a "$out"
  done
done
