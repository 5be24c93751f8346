// Training: one UNet, one optimizer, a learning-rate schedule and a data source, in one process or
// as one rank of an MPI job (parameter servers and workers, or all-reduce). The pieces:
//   train_step.h    one step (the same code for every kind of gradient exchange)
//   rank_role.h     what a worker and a parameter server each do in a run
//   trainer.cpp     the run loop: resume, epochs, step lines, checkpoints, validation, hooks
//   benchmark.cpp   --benchmark
#pragma once

#include <cstdint>
#include <string>

#include "unet/nn/unet.h"
#include "unet/parallel/comm.h"
#include "unet/train/memory_estimate.h"
#include "unet/train/train_options.h"
#include "unet/train/training_hooks.h"

namespace unet {

struct BenchmarkResult {
    double samples_per_s = 0, gflop_per_sample = 0, gflops = 0, peak_rss_mib = 0, step_ms = 0;
    double comm_fraction = 0;  // workers' mean share of the time spent waiting on MPI
    int threads = 0, ranks = 1;
    std::string json(const TrainOptions& o) const;
};

// Times --steps training steps on random data after --bench_warmup; under mpirun with the
// distributed step (--sync, --num_ps), the global batch split over the workers. Collective.
BenchmarkResult run_benchmark(const TrainOptions& o, Comm& comm);
// Trains on --data (or generated data) over `comm`: alone, as a parameter server and workers, or
// all-reduce. Rank 0 of `comm` writes training.log and the checkpoints in --logdir. `hooks`, if
// given, hears about every step and epoch on every rank (see training_hooks.h).
RunSummary run_training(const TrainOptions& o, Comm& comm, TrainingHooks* hooks = nullptr);

// The model's parts of a rank's memory estimate (memory_estimate.h) for `batch` samples of `spatial`.
MemoryEstimateParts model_memory(UNet& model, const Dims& spatial, int64_t batch, int optimizer_state_copies,
                                 bool under_mpi);
// The model's size and the memory estimate on stderr (before a run or a benchmark).
void print_model_summary(UNet& model, const TrainOptions& o, const MemoryEstimateParts& memory);

double peak_rss_mib();

}  // namespace unet
