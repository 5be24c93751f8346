#include "unet/parallel/thread_placement.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "mpi_call.h"
#include "unet/parallel/comm.h"

namespace unet {

namespace {

// Threads a computing rank gets by default: its share of the node, within its own mask.
int default_share(const PlacementInput& in) {
    const int share = in.node_cores / std::max(1, in.computing_ranks);
    return std::max(1, std::min(in.rank_cores, share));
}

// The CPUs this process may run on, as 64-bit words (one bit per CPU), and how many they are.
std::vector<uint64_t> affinity_words(int* count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<uint64_t> words(CPU_SETSIZE / 64, 0);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {  // cannot say: whatever OpenMP sees
        *count = std::max(1, omp_get_num_procs());
        for (int c = 0; c < *count && c < CPU_SETSIZE; ++c) words[size_t(c / 64)] |= uint64_t(1) << (c % 64);
        return words;
    }
    *count = CPU_COUNT(&set);
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) words[size_t(c / 64)] |= uint64_t(1) << (c % 64);
    return words;
}

int bits(const std::vector<uint64_t>& words) {
    int n = 0;
    for (uint64_t w : words) n += __builtin_popcountll(w);
    return n;
}

// Threads the user asked for: the flag, else OMP_NUM_THREADS as OpenMP read it (its first number).
int requested_threads(int flag) {
    if (flag > 0) return flag;
    const char* env = std::getenv("OMP_NUM_THREADS");
    return env && *env ? omp_get_max_threads() : 0;
}

std::string host_name() {
    char name[256] = {0};
    if (gethostname(name, sizeof(name) - 1) != 0) return "this host";
    return name;
}

int node_sum(MPI_Comm node, int value, MPI_Op op = MPI_SUM) {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, op, node), "MPI_Allreduce");
    return value;
}

}  // namespace

int placement_threads(const PlacementInput& in) {
    if (in.requested > 0) return in.requested;
    if (in.computes) return default_share(in);
    // A waiting rank: what the computing ranks leave of the node, at least one.
    const int used = in.computing_ranks > 0 ? in.computing_ranks * default_share(in) : 0;
    return std::max(1, std::min(in.rank_cores, in.node_cores - used));
}

bool placement_oversubscribed(int computing_threads, int node_cores) { return computing_threads > node_cores; }

std::string placement_line(int threads, int node_cores, int computing_ranks, int waiting_threads,
                           const std::string& waiting_name) {
    std::string line = "threads: " + std::to_string(threads) + " per rank (" + std::to_string(node_cores) + " core" +
                       (node_cores == 1 ? "" : "s") + " / " + std::to_string(computing_ranks) + " rank" +
                       (computing_ranks == 1 ? "" : "s") + " on this node";
    if (waiting_threads >= 0)
        line += "; not counted: " + waiting_name + ", which mostly sleeps (" + std::to_string(waiting_threads) +
                " thread" + (waiting_threads == 1 ? "" : "s") + ")";
    return line + "); set --num_threads to change";
}

std::string oversubscription_warning(const std::string& host, int computing_ranks, int threads_per_rank,
                                     int node_cores) {
    const int fit = std::max(1, node_cores / std::max(1, computing_ranks));
    return "warning: " + std::to_string(computing_ranks) + " rank" + (computing_ranks == 1 ? "" : "s") + " x " +
           std::to_string(threads_per_rank) + " thread" + (threads_per_rank == 1 ? "" : "s") + " on " +
           std::to_string(node_cores) + " core" + (node_cores == 1 ? "" : "s") + " of " + host +
           ": the threads take turns on the cores and the step slows down; --num_threads " + std::to_string(fit) +
           " (or OMP_NUM_THREADS=" + std::to_string(fit) + ") fits";
}

int place_threads(Comm& world, int num_threads_flag, bool computes, const std::string& waiting_name,
                  const char* program) {
    PlacementInput in;
    in.requested = requested_threads(num_threads_flag);
    in.computes = computes;
    if (world.size() < 2) {
        if (in.requested > 0) omp_set_num_threads(in.requested);
        return omp_get_max_threads();
    }
    MPI_Comm node;
    check_mpi(MPI_Comm_split_type(native_comm(world.mpi_comm()), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL,
                                  &node),
              "MPI_Comm_split_type");
    std::vector<uint64_t> mask = affinity_words(&in.rank_cores);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, mask.data(), int(mask.size()), MPI_UINT64_T, MPI_BOR, node),
              "MPI_Allreduce");
    in.node_cores = std::max(1, bits(mask));
    in.computing_ranks = node_sum(node, computes ? 1 : 0);
    const int threads = placement_threads(in);
    omp_set_num_threads(threads);

    // Oversubscription: the node's computing threads beyond its cores, or a rank's beyond its mask.
    const int computing_threads = node_sum(node, computes ? threads : 0);
    const bool squeezed = node_sum(node, computes && threads > in.rank_cores ? 1 : 0, MPI_MAX) > 0;
    const int most = node_sum(node, computes ? threads : 0, MPI_MAX);
    int node_rank = 0;
    check_mpi(MPI_Comm_rank(node, &node_rank), "MPI_Comm_rank");
    if (node_rank == 0 && (placement_oversubscribed(computing_threads, in.node_cores) || squeezed)) {
        const int cores = squeezed && !placement_oversubscribed(computing_threads, in.node_cores) ? in.rank_cores
                                                                                                  : in.node_cores;
        std::fprintf(stderr, "%s: %s\n", program,
                     oversubscription_warning(host_name(), in.computing_ranks, most, cores).c_str());
        std::fflush(stderr);
    }
    const int waiting = node_sum(node, computes ? -1 : threads, MPI_MAX);

    // The default's line, on rank 0, for the node of the first computing rank (every rank's numbers
    // come to rank 0; other nodes' counts, when they differ, follow).
    if (in.requested == 0) {
        const int mine[4] = {computes ? 1 : 0, threads, in.node_cores, in.computing_ranks};
        std::vector<int> all(world.is_root() ? size_t(4 * world.size()) : 0);
        const int waiting_of_mine = waiting;
        std::vector<int> waits(world.is_root() ? size_t(world.size()) : 0);
        check_mpi(MPI_Gather(mine, 4, MPI_INT, all.data(), 4, MPI_INT, 0, native_comm(world.mpi_comm())), "MPI_Gather");
        check_mpi(MPI_Gather(&waiting_of_mine, 1, MPI_INT, waits.data(), 1, MPI_INT, 0, native_comm(world.mpi_comm())),
                  "MPI_Gather");
        if (world.is_root()) {
            int first = -1;
            std::set<int> others;
            for (int r = 0; r < world.size(); ++r) {
                if (!all[size_t(4 * r)]) continue;
                if (first < 0) first = r;
                else if (all[size_t(4 * r + 1)] != all[size_t(4 * first + 1)]) others.insert(all[size_t(4 * r + 1)]);
            }
            if (first >= 0) {
                const int* f = &all[size_t(4 * first)];
                std::string line = placement_line(f[1], f[2], f[3], waits[size_t(first)], waiting_name);
                if (!others.empty()) {  // inside the brackets, before the flag's hint
                    std::string more = "; on other nodes:";
                    for (int t : others) more += " " + std::to_string(t);
                    line.insert(line.rfind("); set --num_threads"), more + " per rank");
                }
                std::printf("%s\n", line.c_str());
                std::fflush(stdout);
            }
        }
    }
    MPI_Comm_free(&node);
    return threads;
}

}  // namespace unet
