// Hard metrics and the documented empty-mask rule.
#include <gtest/gtest.h>

#include "unet/nn/metrics.h"

using namespace unet;

TEST(Metrics, ConfusionCounts) {
    const float p[6] = {0.9f, 0.6f, 0.2f, 0.1f, 0.7f, 0.4f};
    const float t[6] = {1, 0, 1, 0, 1, 0};
    const Confusion c = confusion(p, t, 6);
    EXPECT_EQ(c.tp, 2);
    EXPECT_EQ(c.fp, 1);
    EXPECT_EQ(c.fn, 1);
    EXPECT_EQ(c.tn, 2);
    EXPECT_DOUBLE_EQ(c.dice(), 4.0 / 6.0);
    EXPECT_DOUBLE_EQ(c.sensitivity(), 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(c.specificity(), 2.0 / 3.0);
}

TEST(Metrics, EmptyTruthAndEmptyPredictionIsPerfect) {
    const float p[4] = {0.1f, 0.2f, 0.3f, 0.4f}, t[4] = {0, 0, 0, 0};
    const Confusion c = confusion(p, t, 4);
    EXPECT_DOUBLE_EQ(c.dice(), 1.0);
    EXPECT_DOUBLE_EQ(c.sensitivity(), 1.0);
    EXPECT_DOUBLE_EQ(c.specificity(), 1.0);
}

TEST(Metrics, EmptyTruthWithAPredictionScoresZeroDice) {
    const float p[4] = {0.9f, 0.2f, 0.3f, 0.4f}, t[4] = {0, 0, 0, 0};
    const Confusion c = confusion(p, t, 4);
    EXPECT_DOUBLE_EQ(c.dice(), 0.0);
    EXPECT_DOUBLE_EQ(c.specificity(), 0.75);
}

TEST(Metrics, SumsAverageOverSamplesAndMerge) {
    MetricSums a, b;
    a.add({1, 0, 0, 3});  // dice 1
    b.add({0, 1, 1, 2});  // dice 0
    a.merge(b);
    EXPECT_EQ(a.samples, 2);
    EXPECT_DOUBLE_EQ(a.mean_dice(), 0.5);
}
