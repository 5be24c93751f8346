#include "unet/nn/metrics.h"

#include <stdexcept>
#include <string>

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

MetricSums::MetricSums(int c) : channels(c) {
    if (c < 1 || c > kMaxMetricChannels)
        throw std::invalid_argument("MetricSums: " + std::to_string(c) + " channels, expected 1.." +
                                    std::to_string(kMaxMetricChannels));
}

void MetricSums::add(const Confusion* c) {
    for (int k = 0; k < channels; ++k) {
        dice[size_t(k)] += c[k].dice();
        sensitivity[size_t(k)] += c[k].sensitivity();
        specificity[size_t(k)] += c[k].specificity();
    }
    ++samples;
}

void MetricSums::merge(const MetricSums& o) {
    double w[kWire];
    o.to_wire(w);
    add_wire(w);
}

void MetricSums::to_wire(double* w) const {
    for (int k = 0; k < kMaxMetricChannels; ++k) {
        w[k] = dice[size_t(k)];
        w[kMaxMetricChannels + k] = sensitivity[size_t(k)];
        w[2 * kMaxMetricChannels + k] = specificity[size_t(k)];
    }
    w[3 * kMaxMetricChannels] = loss;
    w[3 * kMaxMetricChannels + 1] = double(samples);
}

void MetricSums::add_wire(const double* w) {
    for (int k = 0; k < kMaxMetricChannels; ++k) {
        dice[size_t(k)] += w[k];
        sensitivity[size_t(k)] += w[kMaxMetricChannels + k];
        specificity[size_t(k)] += w[2 * kMaxMetricChannels + k];
    }
    loss += w[3 * kMaxMetricChannels];
    samples += int64_t(w[3 * kMaxMetricChannels + 1]);
}

double MetricSums::over_channels(const std::array<double, kMaxMetricChannels>& v) const {
    double s = 0;
    for (int k = 0; k < channels; ++k) s += mean(v[size_t(k)]);
    return s / double(channels);
}

}  // namespace unet
