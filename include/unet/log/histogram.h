// Histograms for TensorBoard with TensorFlow's default bucket limits: 0, then +-1e-12 growing by
// 10% per bucket up to 1e20, then +-DBL_MAX (1549 limits). A value v falls into the first bucket
// whose limit is above it (bucket i holds [limit(i-1), limit(i))). NaN values are not counted;
// +-Inf land in the outermost buckets.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/summary.pb.h"

namespace unet {

// Ascending; the last is DBL_MAX.
const std::vector<double>& default_bucket_limits();

class Histogram {
   public:
    Histogram();
    void add(double value);
    void add(const float* values, int64_t n);

    double count() const { return num_; }
    double min() const { return min_; }
    double max() const { return max_; }
    double sum() const { return sum_; }
    double sum_squares() const { return sum_squares_; }
    const std::vector<double>& buckets() const { return buckets_; }  // one per default limit

    // TensorFlow's encoding: each run of empty buckets becomes one bucket ending at the run's
    // last limit, so the proto stays small.
    tb::HistogramProto to_proto() const;

   private:
    std::vector<double> buckets_;
    double num_ = 0, min_, max_, sum_ = 0, sum_squares_ = 0;
};

}  // namespace unet
