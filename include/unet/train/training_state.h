// Everything a run needs to continue bit for bit, to and from a Checkpoint: flat parameters,
// batch-norm buffers, optimizer moments and step count, and where training stood (step, epoch,
// steps done in that epoch, best validation Dice). Data order, augmentation and dropout masks are
// functions of (seed, epoch, position, step), so they need no state of their own.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "unet/train/train_options.h"
#include "unet/io/checkpoint.h"
#include "unet/nn/metrics.h"
#include "unet/nn/optimizer.h"
#include "unet/core/param_store.h"

namespace unet {

struct Progress {
    int64_t step = 0;        // optimizer steps taken
    int epoch = 0;           // epoch in progress
    int64_t epoch_step = 0;  // steps of `epoch` already taken
    double best_val_dice = -1;
    // Sums over those steps of the step losses and Dice, so that a resumed epoch's means are the
    // uninterrupted epoch's; and the run's training seconds before this session.
    double epoch_loss_sum = 0, epoch_dice_sum = 0;
    std::array<double, kMaxMetricChannels> epoch_region_dice_sums{};  // each output region's Dice
    double train_seconds = 0;
};

// "name offset count" per parameter, one per line: a resumed model must match it exactly.
std::string param_layout(const ParamStore& store);

// `store`: the whole model's parameters and buffers (a UNet's, or a parameter server's gathered copy).
// The most writing a checkpoint holds at once: the captured copy, HDF5's in-memory file image and
// the copy written out (io/checkpoint.cpp), each about the parameters, buffers and optimizer state.
int64_t checkpoint_write_bytes(const ParamStore& store, const Optimizer& opt);
// `preprocessing`: InputPreprocessing::to_text of the run's dataset ("" for generated data).
Checkpoint capture_state(const ParamStore& store, Optimizer& opt, const Progress& p, const TrainOptions& o,
                         const std::string& preprocessing = "");
// The options a checkpoint's run resolved (its "config" string); throws naming `source`.
TrainOptions options_of(const Checkpoint& c, const std::string& source);

// Throws WrongCheckpoint naming `source` when the checkpoint belongs to another model or
// optimizer, std::runtime_error when an array or counter is missing or out of range (damage).
Progress restore_state(const Checkpoint& c, const std::string& source, ParamStore& store, Optimizer& opt);

}  // namespace unet
