// unet_train: trains a 2D or 3D UNet, in one process or under mpirun (rank 0 parameter server,
// ranks 1..N-1 workers; or all-reduce). Errors end in one line: usage errors exit 2, others 1.
#include <omp.h>
#include <xmmintrin.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <iostream>

#include "unet/cli/program.h"
#include "unet/train/train_options.h"
#include "unet/core/check.h"
#include "unet/parallel/comm.h"
#include "unet/parallel/thread_placement.h"
#include "unet/train/tensorboard_hooks.h"
#include "unet/train/trainer.h"
#include "unet/tune/search_space.h"
#include "unet/tune/tuner.h"

// Intel's --blocktime (KMP_BLOCKTIME: ms an idle OpenMP thread spins before it sleeps) for GNU
// OpenMP, which reads its wait policy once at start-up: 0 -> OMP_WAIT_POLICY=passive, 1000 or more
// ("infinite") -> active, otherwise GOMP_SPINCOUNT of about a million spins per millisecond. The
// program re-executes itself once with that environment (before MPI starts). Only the command line
// is read for this flag.
static void apply_blocktime(int argc, char** argv) {
    if (std::getenv("UNET_BLOCKTIME_APPLIED")) return;
    long ms = -1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--blocktime" && i + 1 < argc) ms = std::strtol(argv[i + 1], nullptr, 10);
        else if (a.rfind("--blocktime=", 0) == 0) ms = std::strtol(a.c_str() + 12, nullptr, 10);
    }
    if (ms < 0) return;
    if (ms == 0) setenv("OMP_WAIT_POLICY", "passive", 1);
    else if (ms >= 1000) setenv("OMP_WAIT_POLICY", "active", 1);
    else setenv("GOMP_SPINCOUNT", std::to_string(ms * 1000000L).c_str(), 1);
    setenv("UNET_BLOCKTIME_APPLIED", "1", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then go on with the old policy
}

// Whether this rank mostly sleeps rather than computes: a parameter server (--sync ps, ranks below
// --num_ps of its group) or, under --tune, the coordinator (world rank 0). Such ranks are not counted
// when the cores are shared among the ranks (thread_placement.h says why).
static bool rank_waits(const unet::TrainOptions& o, const unet::Comm& world) {
    int rank = world.rank(), size = world.size();
    if (size < 2) return false;
    if (!o.tune_file.empty()) {
        if (rank == 0) return true;
        const int group = std::max(1, o.group_size);
        rank = (rank - 1) % group;
        size = group;
    }
    return size > 1 && o.sync == "ps" && rank < o.num_ps;
}

// What the waiting ranks are, for the placement line.
static std::string waiting_name(const unet::TrainOptions& o) {
    const bool servers = o.sync == "ps" && (o.tune_file.empty() || o.group_size > 1);
    const std::string s = o.num_ps > 1 ? "parameter servers" : "parameter server";
    if (o.tune_file.empty()) return "the " + s;
    return servers ? "the coordinator and the groups' " + s : "the coordinator";
}

int main(int argc, char** argv) {
    apply_blocktime(argc, argv);
    return unet::run_program("unet_train", [&] {
        unet::TrainOptions opts;
        if (!unet::parse_train_options(argc, argv, opts, "", unet::tune_file_settings)) return 0;
        if (opts.check_only) {
            if (unet::Comm::world().is_root()) std::printf("unet_train: flags ok\n");
            return 0;
        }
        unet::Comm& world = unet::Comm::world();
        const bool waits = rank_waits(opts, world);
        unet::place_threads(world, opts.num_threads, !waits,
                            waiting_name(opts),
                            "unet_train");
        // Flush denormals to zero on every compute thread: tiny activations and gradients late in
        // training otherwise run through microcode assists, many times slower.
        _mm_setcsr(_mm_getcsr() | 0x8040);
#pragma omp parallel
        _mm_setcsr(_mm_getcsr() | 0x8040);
        if (opts.benchmark) {
            const unet::BenchmarkResult r = unet::run_benchmark(opts, unet::Comm::world());
            if (unet::Comm::world().is_root()) std::cout << r.json(opts) << std::endl;
            return 0;
        }
        if (!opts.tune_file.empty()) return unet::run_tuning(argc, argv, opts);
        unet::Comm& comm = unet::Comm::world();
        // TensorBoard event files in the run directory, written by rank 0 alone.
        unet::TensorBoardHooks tensorboard(comm.is_root());
        try {
            unet::run_training(opts, comm, &tensorboard);
        } catch (const std::exception& e) {
            tensorboard.on_failure(e.what());
            throw;
        }
        return 0;
    });
}
