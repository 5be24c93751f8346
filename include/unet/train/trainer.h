// Training: one UNet, one optimizer, a learning-rate schedule and a data source, in one process or
// as one rank of an MPI job (parameter server or all-reduce; see train_step and Comm).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "unet/cli/train_options.h"
#include "unet/dist/comm.h"
#include "unet/dist/allreduce_exchange.h"
#include "unet/dist/ps_exchange.h"
#include "unet/nn/metrics.h"
#include "unet/train/training_hooks.h"

namespace unet {

struct StepResult {
    double loss = 0;  // batch mean
    double dice = 0;  // batch mean of hard Dice
    double compute_s = 0, comm_s = 0, update_s = 0;  // forward + loss + backward, MPI, optimizer
};

// How a step is shared with other ranks: none (one process), all-reduce, or parameter servers.
struct StepComm {
    Comm* comm = nullptr;                    // null: this process alone
    AllreduceExchange* allreduce = nullptr;  // --sync allreduce: gradient buckets all-reduced
    PsExchange* ps = nullptr;                // --sync ps: gradient buckets sent to the servers
    double step_timeout_s = 0;               // how long rank 0 waits for a worker (0: forever)
};

// One training step on `n` samples: forward, loss, backward (into model.store().grads()),
// optimizer update. Throws DivergenceError naming `step` if the loss is NaN or Inf.
// With other ranks, the n samples are this rank's share of the global batch: the loss sums and
// the gradients are summed over the ranks, so every rank takes the same step. Gradients leave
// in buckets while backward still runs. Servers hold no data (n = 0): they sum the workers'
// buckets in worker order, apply the optimizer and send the parameters back.
StepResult train_step(UNet& model, Optimizer& opt, const LrSchedule& schedule, LossKind loss,
                      const float* images, const float* masks, int64_t n, const Dims& spatial,
                      int64_t step, std::vector<float>& grad_scratch, const StepComm& dist = {});

// Mean loss and metrics over samples, in eval mode.
MetricSums evaluate(UNet& model, LossKind loss, const float* images, const float* masks, int64_t n,
                    const Dims& spatial, int64_t batch);

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

double peak_rss_mib();

}  // namespace unet
