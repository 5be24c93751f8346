#include "unet/nn/metrics.h"

namespace unet {

static double ratio_or_one(double num, double den) { return den > 0 ? num / den : 1.0; }

double Confusion::dice() const { return ratio_or_one(2.0 * double(tp), double(2 * tp + fp + fn)); }
double Confusion::sensitivity() const { return ratio_or_one(double(tp), double(tp + fn)); }
double Confusion::specificity() const { return ratio_or_one(double(tn), double(tn + fp)); }

Confusion confusion(const float* pred, const float* truth, int64_t voxels, float threshold) {
    int64_t tp = 0, fp = 0, fn = 0, tn = 0;
#pragma omp parallel for reduction(+ : tp, fp, fn, tn) schedule(static)
    for (int64_t k = 0; k < voxels; ++k) {
        const bool p = pred[k] >= threshold, t = truth[k] >= 0.5f;
        tp += p && t;
        fp += p && !t;
        fn += !p && t;
        tn += !p && !t;
    }
    return {tp, fp, fn, tn};
}

void MetricSums::add(const Confusion& c) {
    dice += c.dice();
    sensitivity += c.sensitivity();
    specificity += c.specificity();
    ++samples;
}

void MetricSums::merge(const MetricSums& o) {
    dice += o.dice;
    sensitivity += o.sensitivity;
    specificity += o.specificity;
    loss += o.loss;
    samples += o.samples;
}

}  // namespace unet
