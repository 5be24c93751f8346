// Hard segmentation metrics: predictions are thresholded at 0.5, then per sample
//   Dice        = 2 TP / (2 TP + FP + FN)
//   sensitivity = TP / (TP + FN)      (recall on tumour voxels)
//   specificity = TN / (TN + FP)
// Empty-mask rule (BraTS convention): when a denominator is 0 there was nothing to find or to
// get wrong, and the metric is 1. So an empty truth with an empty prediction has Dice 1, while an
// empty truth with a non-empty prediction has Dice 0 (TP = FN = 0, FP > 0). Batch and epoch values
// are means over samples.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace unet {

struct Confusion {
    int64_t tp = 0, fp = 0, fn = 0, tn = 0;
    double dice() const;
    double sensitivity() const;
    double specificity() const;
};

Confusion confusion(const float* pred, const float* truth, int64_t voxels, float threshold = 0.5f);

// The most output channels (tumour regions) a model scores: WT, TC and ET (label_regions.h).
constexpr int kMaxMetricChannels = 3;

// Running means over samples, per output channel; add() one sample at a time (its confusion per
// channel), merge() partial sums from workers. The overall Dice, sensitivity and specificity are
// the means over the channels of the per-channel means (nnU-Net's and BraTS's "mean over regions").
struct MetricSums {
    int channels = 1;
    std::array<double, kMaxMetricChannels> dice{}, sensitivity{}, specificity{};  // summed over samples
    double loss = 0;
    int64_t samples = 0;

    MetricSums() = default;
    explicit MetricSums(int channels);  // throws std::invalid_argument outside 1..kMaxMetricChannels
    void add(const Confusion* per_channel);  // one sample: `channels` confusions
    void add(const Confusion& c) { add(&c); }
    void merge(const MetricSums& o);
    double mean_dice(int c) const { return mean(dice[size_t(c)]); }
    double mean_dice() const { return over_channels(dice); }
    double mean_sensitivity() const { return over_channels(sensitivity); }
    double mean_specificity() const { return over_channels(specificity); }
    double mean_loss() const { return mean(loss); }

    // The sums as a flat array of kWire doubles (an MPI all-reduce adds them element-wise).
    static constexpr int kWire = 3 * kMaxMetricChannels + 2;
    void to_wire(double* w) const;
    void add_wire(const double* w);  // adds what to_wire wrote (the channel count stays ours)

   private:
    double mean(double sum) const { return samples ? sum / double(samples) : 0; }
    double over_channels(const std::array<double, kMaxMetricChannels>& v) const;
};

}  // namespace unet
