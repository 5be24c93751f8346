// What one rank does in a training run, behind one interface, so the run loop (trainer.cpp) is
// the same on every rank:
//   worker   its share of every batch (an HDF5 Loader or generated data), the UNet, forward,
//            backward and a GradientExchange (local, all-reduce or parameter-server worker); its
//            part of each validation pass
//   server   (--sync ps, ranks 0..num_ps-1) a PsShard only: shard-sized parameters, gradient and
//            optimizer state; no model, no data, no pictures. When it is rank 0 it still writes
//            the logs and checkpoints: it gathers the other servers' shards, and what only a worker
//            has (batch-norm statistics, the picture sample and its prediction, the data's sizes)
//            comes to it from the first worker.
// Every method marked collective is called by every rank of the run at the same point.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "unet/core/param_store.h"
#include "unet/data/batch.h"
#include "unet/infer/volume_validation.h"
#include "unet/nn/metrics.h"
#include "unet/nn/optimizer.h"
#include "unet/parallel/comm.h"
#include "unet/parallel/gradient_exchange.h"
#include "unet/parallel/step_control.h"
#include "unet/train/train_options.h"
#include "unet/train/train_step.h"
#include "unet/train/training_state.h"

namespace unet {

// The run's shape, the same on every rank once the roles are built.
struct RunSetup {
    TrainOptions o;              // resolved; in_channels and input_size from the dataset
    int servers = 0, workers = 1;
    int worker = 0;              // this rank's worker index; < 0 on a server
    int first_worker() const { return servers; }
    ExchangeConfig exchange;
    int64_t train_samples = 0, val_samples = 0, steps_per_epoch = 0;
    // Whole-volume validation (3D with --data): every `whole_every` epochs (0: never), windows of
    // the training patch, as many per forward as a worker's batch (the training plan serves them).
    int whole_every = 0;
    WindowOptions whole_window;
    bool whole_due(int epoch, int epochs) const {
        return whole_every > 0 && ((epoch + 1) % whole_every == 0 || epoch + 1 == epochs);
    }
};

// Who serves and who works over `comm` (--sync, --num_ps) and how gradients travel; throws
// UsageError when the servers would leave no worker.
RunSetup plan_ranks(const TrainOptions& o, Comm& comm);
// plan_ranks for a training run, which also checks that the batch covers every worker, --logdir
// under mpirun, and that every rank has the same settings (collective); UsageError naming the flag.
RunSetup plan_run(const TrainOptions& o, Comm& comm);

// A server's shard with the model's initial parameters (the workers' seeded He initialisation,
// computed on a temporary whole-model store). `whole`, if given, keeps that store.
std::unique_ptr<PsShard> make_initial_shard(const RunSetup& s, Comm& comm, std::unique_ptr<ParamStore>* whole = nullptr);

class RankRole {
   public:
    virtual ~RankRole() = default;
    // After the constructor (collective): the setup with the dataset's sizes filled in.
    virtual const RunSetup& setup() const = 0;
    // Continues from a checkpoint (every rank reads it); returns where training stood.
    virtual Progress restore(const Checkpoint& c, const std::string& source) = 0;
    // Starts `epoch`, skipping its first `skip` batches (a resumed epoch).
    virtual void start_epoch(int epoch, int64_t skip) = 0;
    // One step (collective); false when the epoch has no batch left (then nothing ran).
    virtual bool step(int64_t step, StepControl& ctl, StepResult& result) = 0;
    virtual double data_wait_s() const = 0;  // this epoch's time blocked on data
    // This rank's part of one validation pass (a server's is empty). Not collective.
    virtual MetricSums validate() = 0;
    // This rank's part of the whole-volume validation (setup().whole_every > 0; a server's is
    // empty). Not collective.
    virtual VolumeScoreSums validate_whole() = 0;
    // Collective: the fixed validation sample for pictures, on rank 0 (empty elsewhere).
    virtual Batch picture_sample() = 0;
    // Collective: the current model's probabilities for that sample on rank 0 (null elsewhere).
    virtual const float* predict_sample() = 0;
    // Collective: brings the whole model (parameters, batch-norm statistics, optimizer state, the
    // last summed gradient) to rank 0, where model() and optimizer() then hold it.
    virtual void gather_to_root() = 0;
    virtual const ParamStore& model() = 0;
    virtual Optimizer& optimizer() = 0;
    // The model and memory summary on stderr, from the first worker; returns its memory estimate
    // in bytes there (0 elsewhere).
    virtual int64_t print_summary() = 0;
};

// Collective: every rank builds its role; workers open the data and build the model.
std::unique_ptr<RankRole> make_rank_role(const RunSetup& setup, Comm& comm, ControlChannel& control);
std::unique_ptr<RankRole> make_worker_role(const RunSetup& setup, Comm& comm, ControlChannel& control);
std::unique_ptr<RankRole> make_server_role(const RunSetup& setup, Comm& comm, ControlChannel& control);

// Collective: the first worker tells every rank the data's sizes (channels, sample size, sample
// and step counts), which `s` then holds; the model is validated against them.
void agree_on_data(RunSetup& s, Comm& comm);

// Point-to-point tags between the first worker and rank 0.
constexpr int kSampleTag = 40, kPredictionTag = 41, kBuffersTag = 42;

}  // namespace unet
