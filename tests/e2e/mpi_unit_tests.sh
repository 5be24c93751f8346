#!/usr/bin/env bash
# The MPI unit tests (tests/mpi/test_*.cpp, built into $BUILD/tests/mpi/) under mpirun with 2, 3
# and 4 ranks: every exchange against the local one, the step control message.
set -u
BUILD=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
status=0
found=0
for t in "$BUILD"/tests/mpi/test_*; do
  [ -x "$t" ] || continue
  found=1
  for np in 2 3 4; do
    if out=$(timeout 300 mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np $np "$t" --gtest_brief=1 --gtest_color=no 2>&1); then
      echo "$(basename "$t") -np $np: $(echo "$out" | grep -c '^\[  PASSED  \]') ok"
    else
      echo "FAIL: $(basename "$t") -np $np"; echo "$out" | tail -30; status=1
    fi
  done
done
[ $found -eq 1 ] || { echo "FAIL: no MPI test binaries in $BUILD/tests/mpi (make test builds them)"; exit 1; }
exit $status
