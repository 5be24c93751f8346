// Segmentation losses on sigmoid probabilities over a batch.
//
// With probabilities p and binary truth t over ALL voxels of the batch (smooth s = 1), per output
// channel:
//   I = sum p*t, P = sum p, T = sum t, Dice = (2I + s) / (P + T + s)
//   dice      1 - Dice                         (soft Dice)
//   log_dice  -log(Dice)                       (Intel's UNet loss)
//   bce       mean over voxels of -(t log p + (1-t) log(1-p)), logs clamped at -100 (PyTorch)
//   dice_bce  dice + bce
// Dice is taken over the whole batch, as Intel's UNet does, not per sample: with per-sample Dice
// every empty slice pulls each of its voxels towards 0 with a gradient of about 1, which drowns
// the tumour slices and collapses training on 2D BraTS-like data (measured: validation Dice stuck
// at the empty-slice share, while batch Dice learns). A batch split over workers therefore needs
// the batch's (I, P, T) summed over the workers before the gradient (DiceSums below).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

enum class LossKind { dice, log_dice, bce, dice_bce };
LossKind parse_loss(const std::string& name);  // throws UsageError naming --loss
const char* loss_name(LossKind kind);

constexpr double kDiceSmooth = 1.0;

// The sums one output channel's batch loss is made of. Workers holding parts of one global batch
// add their partial sums (element-wise) and all compute the same loss and consistent gradients
// from the total.
struct LossSums {
    double inter = 0, pred = 0, truth = 0;  // sum p t, sum p, sum t
    double bce = 0;                         // sum of per-voxel BCE terms
    double samples = 0, voxels = 0;         // counts
    static constexpr int kCount = 6;
    double* data() { return &inter; }
    const double* data() const { return &inter; }
};

// Several output channels (one per tumour region, label_regions.h): pred and truth are
// n x channels x voxels floats (plain NC[D]HW, `voxels` per channel), each channel has its own
// batch loss from its own sums, and the loss is their mean (nnU-Net's region training averages
// its Dice over the regions the same way). One LossSums per channel.
std::vector<LossSums> loss_partial_sums(LossKind kind, const float* pred, const float* truth, int64_t n, int channels,
                                        int64_t voxels);
double loss_from_sums(LossKind kind, const std::vector<LossSums>& total);  // the batch loss
// d(batch loss) / d pred for these n samples, given the whole batch's sums.
void loss_grad(LossKind kind, const float* pred, const float* truth, int64_t n, int channels, int64_t voxels,
               const std::vector<LossSums>& total, float* grad);

// Returns n times the batch loss (so sums over batches divided by their sample counts give mean
// losses) and writes grad[i] = grad_scale * d(n * loss)/d pred[i]; grad_scale = 1 / n gives
// d loss / d pred.
double loss_sum_and_grad(LossKind kind, const float* pred, const float* truth, int64_t n, int channels,
                         int64_t voxels, double grad_scale, float* grad);

// n times the batch loss, without gradient (validation).
double loss_sum(LossKind kind, const float* pred, const float* truth, int64_t n, int channels, int64_t voxels);

}  // namespace unet
