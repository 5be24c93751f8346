// The arithmetic of the default thread placement (thread_placement.h): the node's cores shared among
// its computing ranks, within each rank's own mask, waiting ranks on what is left, and when the
// threads asked for exceed the cores.
#include <gtest/gtest.h>

#include "unet/parallel/thread_placement.h"

using unet::PlacementInput;
using unet::placement_threads;

static PlacementInput node(int node_cores, int rank_cores, int computing, bool computes, int requested = 0) {
    PlacementInput in;
    in.node_cores = node_cores;
    in.rank_cores = rank_cores;
    in.computing_ranks = computing;
    in.computes = computes;
    in.requested = requested;
    return in;
}

TEST(ThreadPlacement, CoresSharedAmongComputingRanks) {
    EXPECT_EQ(placement_threads(node(2, 2, 2, true)), 1);    // server + 2 workers on 2 cores
    EXPECT_EQ(placement_threads(node(32, 32, 2, true)), 16); // one rank per socket
    EXPECT_EQ(placement_threads(node(2, 2, 1, true)), 2);    // a lone worker next to its server
    EXPECT_EQ(placement_threads(node(10, 10, 3, true)), 3);  // rounded down: 9 of 10 cores busy
    EXPECT_EQ(placement_threads(node(16, 16, 1, true)), 16); // one process per node
}

TEST(ThreadPlacement, AtLeastOneThreadWhenRanksOutnumberCores) {
    EXPECT_EQ(placement_threads(node(2, 2, 4, true)), 1);
    EXPECT_EQ(placement_threads(node(1, 1, 8, true)), 1);
}

TEST(ThreadPlacement, NeverMoreThanTheRanksOwnMask) {
    // mpirun bound each of 2 ranks to one core of 8 (its default for 2 ranks): 1 thread, not 4.
    EXPECT_EQ(placement_threads(node(8, 1, 2, true)), 1);
    // --map-by slot:PE=4 on 16 cores with 2 ranks: 4, the binding, not 8.
    EXPECT_EQ(placement_threads(node(16, 4, 2, true)), 4);
}

TEST(ThreadPlacement, WaitingRanksTakeWhatIsLeftAtLeastOne) {
    EXPECT_EQ(placement_threads(node(2, 2, 2, false)), 1);    // every core taken by workers
    EXPECT_EQ(placement_threads(node(10, 10, 3, false)), 1);  // 9 taken, 1 left
    EXPECT_EQ(placement_threads(node(12, 12, 2, false)), 1);  // 12 taken
    EXPECT_EQ(placement_threads(node(40, 40, 0, false)), 40); // a server's node of its own
    EXPECT_EQ(placement_threads(node(40, 4, 0, false)), 4);   // ... within its mask
}

TEST(ThreadPlacement, ARequestWinsEvenWhenItOversubscribes) {
    EXPECT_EQ(placement_threads(node(2, 2, 2, true, 4)), 4);
    EXPECT_EQ(placement_threads(node(2, 2, 2, false, 3)), 3);
    EXPECT_EQ(placement_threads(node(64, 64, 2, true, 1)), 1);
}

TEST(ThreadPlacement, OversubscribedWhenThreadsExceedCores) {
    EXPECT_TRUE(unet::placement_oversubscribed(8, 2));   // OMP_NUM_THREADS=4, 2 ranks, 2 cores
    EXPECT_FALSE(unet::placement_oversubscribed(2, 2));  // exactly full
    EXPECT_FALSE(unet::placement_oversubscribed(1, 2));
    EXPECT_TRUE(unet::placement_oversubscribed(3, 2));   // 3 trial ranks of 1 thread on 2 cores
}

TEST(ThreadPlacement, TheLineNamesThreadsCoresRanksAndTheFlag) {
    EXPECT_EQ(unet::placement_line(1, 2, 2, -1, ""),
              "threads: 1 per rank (2 cores / 2 ranks on this node); set --num_threads to change");
    EXPECT_EQ(unet::placement_line(2, 2, 1, 1, "the parameter server"),
              "threads: 2 per rank (2 cores / 1 rank on this node; not counted: the parameter server, which mostly "
              "sleeps (1 thread)); set --num_threads to change");
    const std::string w = unet::oversubscription_warning("h1", 2, 4, 2);
    EXPECT_NE(w.find("2 ranks x 4 threads on 2 cores of h1"), std::string::npos) << w;
    EXPECT_NE(w.find("--num_threads 1"), std::string::npos) << w;
}
