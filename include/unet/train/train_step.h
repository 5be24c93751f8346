// One training step, the same code for every kind of run: this rank's share of the global batch
// forward, the loss and Dice sums into the step's control message (summed over the run's ranks,
// so every rank knows the whole batch's loss), backward with gradients pushed to the exchange as
// they become final, and the exchange's wait for the next step's parameters. A parameter
// server's step (serve_step) shares the control message and runs its shard instead.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "unet/data/batch.h"
#include "unet/nn/loss.h"
#include "unet/nn/metrics.h"
#include "unet/nn/unet.h"
#include "unet/parallel/gradient_exchange.h"
#include "unet/parallel/ps_shard.h"
#include "unet/parallel/step_control.h"

namespace unet {

struct StepResult {
    double loss = 0;  // batch mean (the global batch)
    double dice = 0;  // batch mean of hard Dice (the mean over the output channels' Dice)
    std::array<double, kMaxMetricChannels> channel_dice{};  // each output channel's (region's)
    double compute_s = 0, comm_s = 0, update_s = 0;  // forward + loss + backward, MPI, optimizer
};

// Where the step control message's sums go (StepControl::sums): the loss sums of each output
// channel (a channel the model does not have is all zeros: no voxels), each channel's Dice sum and
// the sample count, then the run loop's timing totals.
enum ControlSlot {
    kLossSlot = 0,                                               // kMaxMetricChannels x LossSums::kCount
    kDiceSlot = kLossSlot + kMaxMetricChannels * LossSums::kCount,  // Dice sum per channel, then samples
    kTimingSlot = kDiceSlot + kMaxMetricChannels + 1,               // RunTimes (trainer.cpp)
    kControlSlots = kTimingSlot + 7,
};
static_assert(kControlSlots <= StepControl::kSums, "the step control message is too short");

// What a worker's steps work with, bound once.
struct StepContext {
    UNet& model;
    GradientExchange& exchange;  // bound to model.store()'s params and grads
    ControlChannel& control;
    LossKind loss;
    std::vector<float> scratch;  // the loss gradient
};

// One step on `batch` (this rank's share of the global batch; n may be 0) at learning rate `lr`.
// `ctl` comes in with the run loop's flags and timings and goes out with the totals over the
// ranks. Throws DivergenceError naming `step` if the batch loss is NaN or Inf.
StepResult train_step(StepContext& c, const Batch& batch, int64_t step, float lr, StepControl& ctl);

// A parameter server's step: the control message (with no loss of its own), then its shard's
// buckets summed, updated at `lr` and sent back. Throws like train_step, and std::runtime_error
// naming silent workers after `timeout_s`.
StepResult serve_step(PsShard& shard, ControlChannel& control, LossKind loss, int64_t step, float lr, double timeout_s,
                      StepControl& ctl);

// The eval-mode forward of n <= batch samples, always run on `batch` (zero samples after the n
// given, in `padded`), so that validation and pictures reuse the training step's network buffers
// instead of building a second set for another batch size. The first n outputs are the samples'.
const float* forward_padded(UNet& model, const float* images, int64_t n, const Dims& spatial, int64_t batch,
                            std::vector<float>& padded);

// Hard metrics of n samples of `channels` output channels (pred and truth n x channels x voxels).
MetricSums sample_metrics(const float* pred, const float* truth, int64_t n, int channels, int64_t voxels);

// Mean loss and metrics over samples, in eval mode, forwards of exactly `batch` samples.
MetricSums evaluate(UNet& model, LossKind loss, const float* images, const float* masks, int64_t n,
                    const Dims& spatial, int64_t batch);

}  // namespace unet
