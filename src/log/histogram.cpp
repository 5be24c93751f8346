#include "unet/log/histogram.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace unet {

const std::vector<double>& default_bucket_limits() {
    static const std::vector<double> limits = [] {
        std::vector<double> positive;
        for (double v = 1e-12; v < 1e20; v *= 1.1) positive.push_back(v);
        positive.push_back(DBL_MAX);
        std::vector<double> all;
        for (auto it = positive.rbegin(); it != positive.rend(); ++it) all.push_back(-*it);
        all.push_back(0.0);
        all.insert(all.end(), positive.begin(), positive.end());
        return all;
    }();
    return limits;
}

Histogram::Histogram()
    : buckets_(default_bucket_limits().size(), 0.0), min_(DBL_MAX), max_(-DBL_MAX) {}

void Histogram::add(double value) {
    if (std::isnan(value)) return;
    const std::vector<double>& limits = default_bucket_limits();
    size_t b = size_t(std::upper_bound(limits.begin(), limits.end(), value) - limits.begin());
    if (b >= buckets_.size()) b = buckets_.size() - 1;  // +Inf and DBL_MAX itself
    buckets_[b] += 1;
    num_ += 1;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
    sum_ += value;
    sum_squares_ += value * value;
}

void Histogram::add(const float* values, int64_t n) {
    for (int64_t i = 0; i < n; ++i) add(double(values[i]));
}

tb::HistogramProto Histogram::to_proto() const {
    tb::HistogramProto proto;
    proto.set_min(min_);
    proto.set_max(max_);
    proto.set_num(num_);
    proto.set_sum(sum_);
    proto.set_sum_squares(sum_squares_);
    const std::vector<double>& limits = default_bucket_limits();
    for (size_t i = 0; i < buckets_.size();) {
        double limit = limits[i], count = buckets_[i];
        ++i;
        if (count <= 0)
            while (i < buckets_.size() && buckets_[i] <= 0) limit = limits[i++];
        proto.add_bucket_limit(limit);
        proto.add_bucket(count);
    }
    return proto;
}

}  // namespace unet
