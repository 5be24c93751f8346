// What a training run tells the outside world while it runs: TensorBoard writers, the tuner's
// early-stopping scheduler. The trainer calls every hook on every rank of its communicator at
// the same points with the same values (metrics are already summed over the ranks), so a hook
// that only the leader needs does its work when `is_leader` and returns the same answer elsewhere.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "unet/train/train_options.h"
#include "unet/core/param_store.h"
#include "unet/data/batch.h"
#include "unet/infer/volume_validation.h"
#include "unet/nn/metrics.h"

namespace unet {

struct StepReport {
    int64_t step = 0;  // steps done (1 after the first)
    int epoch = 0;     // 0-based epoch the step belongs to
    double loss = 0, dice = 0, learning_rate = 0;
    double samples_per_s = 0, step_time_s = 0;        // over the epoch so far
    double comm_fraction = 0, data_wait_fraction = 0;  // of the workers' wall time, same window
};

struct EpochReport {
    int epoch = 0;  // 0-based epoch just finished
    int64_t step = 0;
    double train_loss = 0, train_dice = 0;  // means over the epoch's steps (Dice: over the regions)
    std::array<double, kMaxMetricChannels> train_region_dice{};  // per region (--labels), same steps
    MetricSums validation;                  // summed over the whole validation set (3D: its patches)
    double seconds = 0;
    // Whole-volume validation (--val_whole_every): `whole_volume_run` when the run has it, then the
    // patch numbers above are "val_patch/..." and the whole volumes' are "val/...", on the epochs
    // that scored them (`whole_scored`).
    bool whole_volume_run = false, whole_scored = false;
    VolumeScoreSums whole;
    // The run's validation Dice, which picks checkpoint_best.h5 and which the tuner compares: the
    // whole volumes' where the run scores them (the latest scored), else the validation set's; the
    // mean over the regions, or the --objective region's.
    double val_dice = 0;
};

struct RunSummary {
    std::string status;  // "completed", "stopped early", "interrupted" (signal) or "failed: <why>"
    int epochs = 0;      // epochs finished
    int64_t steps = 0;
    double final_val_dice = 0, best_val_dice = 0, seconds = 0;
};

class TrainingHooks {
   public:
    virtual ~TrainingHooks() = default;
    // Once, before the first step. `sample` is a fixed validation sample (n = 1) for pictures.
    virtual void on_start(const TrainOptions& /*resolved*/, const Batch& /*sample*/) {}
    // Every --print_every steps, with rates and shares over the epoch so far (workers' means).
    virtual void on_step(const StepReport&) {}
    // At steps with --image_every and at each epoch end: the current model's output probabilities
    // for on_start's sample (its spatial floats), on rank 0 of the run (null on the other ranks).
    virtual void on_model(int64_t /*step*/, const float* /*sample_prediction*/) {}
    // After each epoch's validation. On rank 0, `model` holds the current parameters, batch-norm
    // statistics and the last step's summed gradient (the trainer gathers them there first).
    // Returning false stops this run after the epoch (if any rank says stop, all stop).
    virtual bool on_epoch(const EpochReport&, const ParamStore& /*model*/) { return true; }
    // Once at the end, also after an interruption; not after an exception (the caller knows).
    virtual void on_end(const RunSummary&) {}
};

}  // namespace unet
