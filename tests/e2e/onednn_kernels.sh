#!/usr/bin/env bash
# Every hot primitive must run on an optimized oneDNN kernel: no `ref:` and no gemm fallback in
# ONEDNN_VERBOSE output, for 2D and 3D, every up-sampling mode and norm, filters below and above
# 16 (channels-last and blocked layouts). A run that prints no `onednn_verbose,exec` line fails too
# (nothing would have been checked).
# On a CPU without AVX-512 (this project targets Xeons; some test machines are AVX2-only EPYCs)
# oneDNN 2.6.3 runs a 3D transposed convolution's forward, and a 3D convolution's backward weights,
# through its gemm kernel. There those are counted as a NOTE, except a backward weights with at
# most 16 output channels, which DepthSlicedWeightsGrad runs as 2D JIT kernels over depth slices
# (3-4x faster there): a gemm for it fails, as `ref:` does. Reference kernels carry a prefix too: bnorm_ref:any, oneDNN's batch norm with its
# ReLU fused over channels-last channels that do not fill a vector (4 filters below), 25-30x slower.
set -u
BIN=${BUILD:-build}/bin/unet_train
status=0
avx512=1
grep -q ' avx512f' /proc/cpuinfo || avx512=0
run() {
  local log
  log=$(ONEDNN_VERBOSE=1 OMP_NUM_THREADS=2 "$BIN" --benchmark --steps 1 --bench_warmup 0 --batch_size 2 "$@" 2>&1) \
    || { echo "FAIL: unet_train $* exited non-zero"; echo "$log" | tail -3; status=1; return; }
  if ! echo "$log" | grep -q '^onednn_verbose,exec'; then
    echo "FAIL: no onednn_verbose,exec line with $* (ONEDNN_VERBOSE not honoured?): nothing was checked"; status=1; return
  fi
  local bad
  if [ "$avx512" -eq 0 ]; then
    local noted
    local gemm_ok
    gemm_ok=$(echo "$log" | grep '^onednn_verbose,exec' | grep gemm |
              grep -E ',deconvolution,[^,]*,forward|,convolution,[^,]*,backward_weights,.*_ic[0-9]+oc(1[7-9]|[2-9][0-9]|[0-9]{3,})_')
    noted=$(echo -n "$gemm_ok" | grep -c .)
    [ "$noted" -gt 0 ] && echo "NOTE: $noted gemm kernels on this CPU without AVX-512 with $*"
    bad=$(echo "$log" | grep '^onednn_verbose,exec' | grep -E ',[a-z0-9_]*ref:|gemm' | grep -vxF "$gemm_ok")
  else
    bad=$(echo "$log" | grep '^onednn_verbose,exec' | grep -E ',[a-z0-9_]*ref:|gemm')
  fi
  if [ -n "$bad" ]; then
    echo "FAIL: slow kernels with $*:"; echo "$bad" | cut -c1-220 | head -5; status=1
  fi
}
for up in transposed nearest linear; do
  for norm in none batch; do
    run --dims 2 --input_size 32,32 --filters 8 --depth 2 --upsampling $up --norm $norm
    run --dims 3 --input_size 16,16,16 --filters 16 --depth 2 --upsampling $up --norm $norm
  done
done
run --dims 2 --input_size 64,64 --filters 32 --depth 3 --norm group
run --dims 3 --input_size 16,16,16 --filters 4 --depth 2 --norm batch
run --dims 2 --input_size 64,64 --filters 16 --depth 3 --norm batch --conv_algorithm winograd
run --dims 2 --input_size 64,64 --filters 16 --depth 3 --norm batch --conv_algorithm direct
exit $status
