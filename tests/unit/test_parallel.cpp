// The parallel floor without mpirun: how gradients are cut into buckets, the step control message
// in a world of one, and the local exchange. The same exchanges over several ranks are checked
// against the local one in tests/mpi/test_exchanges.cpp (under mpirun, tests/e2e/mpi_unit_tests.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "unet/nn/optimizer.h"
#include "unet/parallel/buckets.h"
#include "unet/parallel/gradient_exchange.h"
#include "unet/parallel/step_control.h"

using namespace unet;

TEST(Buckets, CoverTheBufferContiguouslyInOrder) {
    for (int64_t params : {1, 7, 100, 1000, 1001}) {
        for (int64_t bucket : {1, 3, 100, 5000}) {
            const Buckets b = cut_buckets(params, bucket);
            ASSERT_GE(b.count(), 1);
            EXPECT_EQ(b.begin.front(), 0);
            EXPECT_EQ(b.end.back(), params);
            for (int k = 0; k < b.count(); ++k) {
                EXPECT_GT(b.size(k), 0);
                EXPECT_LE(b.size(k), std::max<int64_t>(bucket, 1));
                if (k > 0) {
                    EXPECT_EQ(b.begin[size_t(k)], b.end[size_t(k - 1)]);
                }
                if (k + 1 < b.count()) {
                    EXPECT_EQ(b.size(k), bucket);  // only the last one is shorter
                }
            }
        }
    }
}

TEST(Buckets, NoMoreThanTheMaximumAndNoneForNothing) {
    EXPECT_EQ(cut_buckets(1000, 1, 10).count(), 10);
    EXPECT_EQ(cut_buckets(1000, 1, 10).size(0), 100);
    EXPECT_EQ(cut_buckets(1001, 1, 10).count(), 10);  // 101 floats each, the last 92
    EXPECT_EQ(cut_buckets(1001, 1, 10).size(9), 92);
    EXPECT_EQ(cut_buckets(0, 100).count(), 0);
    EXPECT_EQ(cut_buckets(10, 0).count(), 10);  // at least one float per bucket
}

TEST(Buckets, OwnersRoundRobinOverServers) {
    EXPECT_EQ(Buckets::owner(0, 2), 0);
    EXPECT_EQ(Buckets::owner(1, 2), 1);
    EXPECT_EQ(Buckets::owner(2, 2), 0);
    EXPECT_EQ(Buckets::owner(5, 1), 0);
}

TEST(StepControl, MergeAddsSumsAndTakesTheLargestFlags) {
    StepControl a, b;
    a.sums[0] = 1.5, a.sums[3] = 2, a.stop = 0, a.checkpoint = 1;
    b.sums[0] = 0.25, b.sums[15] = 4, b.stop = 15, b.checkpoint = 0;
    a.merge(b);
    EXPECT_EQ(a.sums[0], 1.75);
    EXPECT_EQ(a.sums[3], 2);
    EXPECT_EQ(a.sums[15], 4);
    EXPECT_EQ(a.stop, 15);
    EXPECT_EQ(a.checkpoint, 1);
}

TEST(StepControl, AWorldOfOneKeepsItsOwnMessage) {
    ControlChannel channel(Comm::world(), 1, 0);
    StepControl m;
    m.sums[2] = 3.25;
    m.stop = 2;
    channel.exchange(7, m);
    EXPECT_EQ(m.sums[2], 3.25);
    EXPECT_EQ(m.stop, 2);
    EXPECT_EQ(m.checkpoint, 0);
}

TEST(LocalExchange, WaitIsOneOptimizerStep) {
    const int64_t n = 37;
    OptimizerConfig oc;
    Optimizer a(oc, n), b(oc, n);
    std::vector<float> pa(static_cast<size_t>(n)), pb(pa), g(pa);
    for (int64_t i = 0; i < n; ++i) pa[size_t(i)] = pb[size_t(i)] = 0.1f * float(i), g[size_t(i)] = float(i % 5) - 2;
    LocalExchange x(a, pa.data(), g.data());
    for (int step = 0; step < 3; ++step) {
        x.push(20);
        x.push(0);
        x.wait(step, 0.01f);
        b.step(pb.data(), g.data(), 0.01f);
    }
    EXPECT_EQ(pa, pb);
    EXPECT_EQ(a.step_count(), 3);
}
