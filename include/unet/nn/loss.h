// Segmentation losses on sigmoid probabilities, per sample, then averaged over the batch.
//
// For one sample with probabilities p and binary truth t over all voxels (smooth s = 1):
//   I = sum p*t, P = sum p, T = sum t, Dice = (2I + s) / (P + T + s)
//   dice      1 - Dice                         (soft Dice)
//   log_dice  -log(Dice)                       (Intel's UNet loss)
//   bce       mean over voxels of -(t log p + (1-t) log(1-p)), logs clamped at -100 (PyTorch)
//   dice_bce  dice + bce
// The batch loss is the mean of the per-sample losses, so a global batch split over workers is
// the sum of the workers' partial sums divided by the global batch size.
#pragma once

#include <cstdint>
#include <string>

namespace unet {

enum class LossKind { dice, log_dice, bce, dice_bce };
LossKind parse_loss(const std::string& name);  // throws UsageError naming --loss
const char* loss_name(LossKind kind);

constexpr double kDiceSmooth = 1.0;

// pred, truth: n samples of `voxels` floats each (truth in {0, 1}). Returns the SUM of the
// per-sample losses and writes grad[i] = grad_scale * d(sum)/d pred[i]. Pass
// grad_scale = 1 / global_batch to get the gradient of the batch mean.
double loss_sum_and_grad(LossKind kind, const float* pred, const float* truth, int64_t n,
                         int64_t voxels, double grad_scale, float* grad);

// Sum of per-sample losses without gradient (validation).
double loss_sum(LossKind kind, const float* pred, const float* truth, int64_t n, int64_t voxels);

}  // namespace unet
