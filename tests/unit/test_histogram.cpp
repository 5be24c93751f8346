// Histograms with TensorFlow's default bucket limits: the limits themselves, which bucket a value
// lands in, the statistics, and the compact encoding (runs of empty buckets collapsed).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "unet/log/histogram.h"

using namespace unet;

TEST(Histogram, DefaultBucketLimits) {
    const std::vector<double>& limits = default_bucket_limits();
    // 1e-12 * 1.1^k < 1e20 for k = 0..773: 774 positive limits, DBL_MAX, the mirror image and 0.
    ASSERT_EQ(limits.size(), 2u * 775u + 1u);
    EXPECT_EQ(limits.front(), -DBL_MAX);
    EXPECT_EQ(limits.back(), DBL_MAX);
    EXPECT_EQ(limits[775], 0.0);
    EXPECT_DOUBLE_EQ(limits[776], 1e-12);
    EXPECT_DOUBLE_EQ(limits[777], 1.1e-12);
    EXPECT_DOUBLE_EQ(limits[774], -1e-12);
    EXPECT_LT(limits[limits.size() - 2], 1e20);
    EXPECT_GT(limits[limits.size() - 2] * 1.1, 1e20 * 0.999999);
    for (size_t i = 1; i < limits.size(); ++i) ASSERT_LT(limits[i - 1], limits[i]) << i;
    for (size_t i = 0; i < limits.size(); ++i) ASSERT_EQ(limits[i], -limits[limits.size() - 1 - i]) << i;
}

TEST(Histogram, ValuesLandInTheFirstBucketWhoseLimitIsAbove) {
    const std::vector<double>& limits = default_bucket_limits();
    Histogram h;
    h.add(0.0);     // [0, 1e-12)
    h.add(1e-12);   // [1e-12, 1.1e-12)
    h.add(-0.5);
    h.add(std::numeric_limits<double>::infinity());
    h.add(std::nan(""));  // not counted
    const std::vector<double>& b = h.buckets();
    EXPECT_EQ(b[776], 1.0);
    EXPECT_EQ(b[777], 1.0);
    EXPECT_EQ(b.back(), 1.0);
    size_t half = 0;
    for (size_t i = 0; i < b.size(); ++i)
        if (limits[i] > -0.5 && (i == 0 || limits[i - 1] <= -0.5)) half = i;
    EXPECT_EQ(b[half], 1.0);
    EXPECT_EQ(std::accumulate(b.begin(), b.end(), 0.0), 4.0);
    EXPECT_EQ(h.count(), 4.0);
}

TEST(Histogram, StatisticsAndCompactEncoding) {
    std::vector<float> values;
    for (int i = 0; i < 1000; ++i) values.push_back(float(i - 300) * 0.01f);
    Histogram h;
    h.add(values.data(), int64_t(values.size()));
    const tb::HistogramProto p = h.to_proto();
    EXPECT_EQ(p.num(), 1000.0);
    EXPECT_FLOAT_EQ(float(p.min()), -3.0f);
    EXPECT_FLOAT_EQ(float(p.max()), 6.99f);
    double sum = 0, squares = 0;
    for (float v : values) sum += v, squares += double(v) * double(v);
    EXPECT_NEAR(p.sum(), sum, 1e-6);
    EXPECT_NEAR(p.sum_squares(), squares, 1e-6);
    ASSERT_EQ(p.bucket_size(), p.bucket_limit_size());
    EXPECT_LT(p.bucket_size(), 400);  // the 1551 buckets, mostly empty, are collapsed
    EXPECT_EQ(std::accumulate(p.bucket().begin(), p.bucket().end(), 0.0), 1000.0);
    EXPECT_EQ(p.bucket_limit(p.bucket_limit_size() - 1), DBL_MAX);
    // No two empty buckets in a row, and the limits still ascend.
    for (int i = 1; i < p.bucket_size(); ++i) {
        EXPECT_FALSE(p.bucket(i) == 0 && p.bucket(i - 1) == 0) << i;
        EXPECT_LT(p.bucket_limit(i - 1), p.bucket_limit(i)) << i;
    }
    // Each count matches the values between its limits.
    double lower = -DBL_MAX;
    for (int i = 0; i < p.bucket_size(); ++i) {
        const double upper = p.bucket_limit(i);
        double n = 0;
        for (float v : values) n += (double(v) >= lower && double(v) < upper) ? 1 : 0;
        EXPECT_EQ(p.bucket(i), n) << i;
        lower = upper;
    }
}
