// main() of the multi-rank GoogleTest programs in tests/mpi (run under mpirun by
// tests/e2e/mpi_unit_tests.sh): only rank 0 prints gtest's report, and the program fails on every
// rank when any rank had a failure.
#include <gtest/gtest.h>

#include "unet/parallel/comm.h"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    unet::Comm& comm = unet::Comm::world();
    if (!comm.is_root()) {
        auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
        delete listeners.Release(listeners.default_result_printer());
    }
    const int rc = RUN_ALL_TESTS();
    const int failed = comm.max(rc != 0 ? 1 : 0);
    comm.finalize();
    return failed;
}
