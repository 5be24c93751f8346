// Hard segmentation metrics: predictions are thresholded at 0.5, then per sample
//   Dice        = 2 TP / (2 TP + FP + FN)
//   sensitivity = TP / (TP + FN)      (recall on tumour voxels)
//   specificity = TN / (TN + FP)
// Empty-mask rule (BraTS convention): when a denominator is 0 there was nothing to find or to
// get wrong, and the metric is 1. So an empty truth with an empty prediction has Dice 1, while an
// empty truth with a non-empty prediction has Dice 0 (TP = FN = 0, FP > 0). Batch and epoch values
// are means over samples.
#pragma once

#include <cstdint>

namespace unet {

struct Confusion {
    int64_t tp = 0, fp = 0, fn = 0, tn = 0;
    double dice() const;
    double sensitivity() const;
    double specificity() const;
};

Confusion confusion(const float* pred, const float* truth, int64_t voxels, float threshold = 0.5f);

// Running means over samples; add() one sample at a time, merge() partial sums from workers.
struct MetricSums {
    double dice = 0, sensitivity = 0, specificity = 0, loss = 0;
    int64_t samples = 0;
    void add(const Confusion& c);
    void merge(const MetricSums& o);
    double mean_dice() const { return samples ? dice / double(samples) : 0; }
    double mean_sensitivity() const { return samples ? sensitivity / double(samples) : 0; }
    double mean_specificity() const { return samples ? specificity / double(samples) : 0; }
    double mean_loss() const { return samples ? loss / double(samples) : 0; }
};

}  // namespace unet
