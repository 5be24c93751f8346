// OpenMP threads per rank when the user asked for none (neither --num_threads nor OMP_NUM_THREADS):
// the cores of the rank's node shared among the ranks there that compute, so `mpirun -np 4` on 2
// cores runs 2 busy threads, not 8. Cores are the CPUs the ranks may run on (their affinity masks,
// so a cpuset or mpirun's binding counts); ranks are counted per node with MPI's shared-memory split.
//
// Ranks that mostly sleep (a parameter server between buckets, the tuner's coordinator) are not
// counted: they wait in usleep loops, and counting them would halve a lone worker's threads next to
// its server. Such a rank takes the cores the computing ranks leave, at least 1 (all of them on a
// node of its own, where its optimizer updates then run on every core).
#pragma once

#include <string>

namespace unet {

class Comm;

// What one rank knows about its node (all counts >= 0).
struct PlacementInput {
    int node_cores = 1;      // CPUs in the union of the affinity masks of the node's ranks
    int rank_cores = 1;      // CPUs in this rank's own affinity mask
    int computing_ranks = 1; // ranks on the node that compute (workers, trial ranks)
    bool computes = true;    // this rank computes (false: a server or the coordinator)
    int requested = 0;       // threads asked for (--num_threads, or OMP_NUM_THREADS); 0: none
};

// This rank's threads: `requested` when given, else the node's cores over its computing ranks, never
// more than the rank's own cores, at least 1 (a waiting rank: the cores left over, at least 1).
int placement_threads(const PlacementInput& in);

// Whether the computing ranks' threads, `computing_threads` summed over the node, exceed its cores.
bool placement_oversubscribed(int computing_threads, int node_cores);

// The start-up line for a default placement: "threads: 1 per rank (2 cores / 2 ranks on this
// node...); set --num_threads to change". `waiting_threads` < 0 when the node has no waiting rank.
std::string placement_line(int threads, int node_cores, int computing_ranks, int waiting_threads,
                           const std::string& waiting_name);

// The warning for an oversubscribed node, naming the host and a thread count that fits.
std::string oversubscription_warning(const std::string& host, int computing_ranks, int threads_per_rank,
                                     int node_cores);

// Collective over the world: sets omp_set_num_threads for this rank and returns its threads. With a
// default placement under mpirun the first computing rank's node is described in one line on rank 0
// (`waiting_name`: what the waiting ranks are, e.g. "the parameter server"); every node whose
// computing ranks' threads exceed its cores gets one warning line on stderr from its first rank.
// `program` prefixes the lines. A world of one: threads as OpenMP chose, nothing printed.
int place_threads(Comm& world, int num_threads_flag, bool computes, const std::string& waiting_name,
                  const char* program);

}  // namespace unet
