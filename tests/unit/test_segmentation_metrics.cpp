// Case scores for unet_predict: Dice, HD95 (MONAI's definition), the empty-mask rules, region label
// sets, summaries, and the exact distance transform against brute force. The comparison with MONAI
// itself is tests/e2e/metrics_vs_monai.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "unet/core/check.h"
#include "unet/infer/segmentation_metrics.h"

using namespace unet;

namespace {

struct Grid {
    int64_t D, H, W;
    int64_t at(int64_t z, int64_t y, int64_t x) const { return (z * H + y) * W + x; }
    int64_t size() const { return D * H * W; }
};

double dist(const Spacing& s, double dz, double dy, double dx) {
    return std::sqrt(dz * dz * s.z * s.z + dy * dy * s.y * s.y + dx * dx * s.x * s.x);
}

// The definition in segmentation_metrics.h, computed the slow way: surfaces by looking at the 6
// neighbours, all pairs of surface voxels, sorted distances, numpy's linear percentile.
double brute_hd95(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, const Grid& g, const Spacing& s) {
    auto inside = [&](const std::vector<uint8_t>& m, int64_t z, int64_t y, int64_t x) {
        return z >= 0 && z < g.D && y >= 0 && y < g.H && x >= 0 && x < g.W && m[size_t(g.at(z, y, x))];
    };
    auto surface = [&](const std::vector<uint8_t>& m) {
        std::vector<std::array<int64_t, 3>> pts;
        for (int64_t z = 0; z < g.D; ++z)
            for (int64_t y = 0; y < g.H; ++y)
                for (int64_t x = 0; x < g.W; ++x)
                    if (inside(m, z, y, x) &&
                        !(inside(m, z - 1, y, x) && inside(m, z + 1, y, x) && inside(m, z, y - 1, x) &&
                          inside(m, z, y + 1, x) && inside(m, z, y, x - 1) && inside(m, z, y, x + 1)))
                        pts.push_back({z, y, x});
        return pts;
    };
    auto directed = [&](const std::vector<std::array<int64_t, 3>>& from, const std::vector<std::array<int64_t, 3>>& to) {
        std::vector<double> d;
        for (const auto& p : from) {
            double best = std::numeric_limits<double>::infinity();
            for (const auto& q : to) best = std::min(best, dist(s, double(p[0] - q[0]), double(p[1] - q[1]), double(p[2] - q[2])));
            d.push_back(best);
        }
        std::sort(d.begin(), d.end());
        const double rank = 0.95 * double(d.size() - 1);
        const size_t lo = size_t(std::floor(rank));
        const size_t hi = std::min(lo + 1, d.size() - 1);
        return d[lo] + (d[hi] - d[lo]) * (rank - double(lo));
    };
    const auto sa = surface(a), sb = surface(b);
    return std::max(directed(sa, sb), directed(sb, sa));
}

std::vector<uint8_t> random_mask(const Grid& g, double density, std::mt19937& rng) {
    std::bernoulli_distribution on(density);
    std::vector<uint8_t> m(size_t(g.size()));
    for (auto& v : m) v = on(rng);
    return m;
}

// A solid block [lo, hi] (inclusive, the same on every axis) in a grid.
std::vector<uint8_t> block(const Grid& g, int64_t lo, int64_t hi) {
    std::vector<uint8_t> m(size_t(g.size()), 0);
    for (int64_t z = lo; z <= hi; ++z)
        for (int64_t y = lo; y <= hi; ++y)
            for (int64_t x = lo; x <= hi; ++x) m[size_t(g.at(z, y, x))] = 1;
    return m;
}

}  // namespace

TEST(SegmentationMetrics, SingleVoxelsAtKnownDistanceWithAnisotropicSpacing) {
    const Grid g{4, 5, 6};
    const Spacing s{2.2, 0.5, 1.0};
    std::vector<uint8_t> a(size_t(g.size()), 0), b(size_t(g.size()), 0);
    a[size_t(g.at(0, 0, 0))] = 1;
    b[size_t(g.at(2, 3, 1))] = 1;
    // z, y and x each with their own spacing: 4.4, 1.5 and 1 mm apart.
    EXPECT_NEAR(hd95_mm(a.data(), b.data(), g.D, g.H, g.W, s), std::sqrt(4.4 * 4.4 + 1.5 * 1.5 + 1.0), 1e-12);
    EXPECT_NEAR(hd95_mm(a.data(), a.data(), g.D, g.H, g.W, s), 0.0, 1e-12);
}

TEST(SegmentationMetrics, Hd95InterpolatesTheDirectedPercentileAndTakesTheLargerDirection) {
    const Grid g{3, 4, 5};
    const Spacing s{2.2, 0.5, 1.0};
    std::vector<uint8_t> a(size_t(g.size()), 0), b(size_t(g.size()), 0);
    b[size_t(g.at(0, 0, 0))] = 1;
    a[size_t(g.at(0, 2, 0))] = 1;  // 1 mm from b
    a[size_t(g.at(1, 0, 3))] = 1;  // sqrt(2.2^2 + 3^2) mm from b
    const double d1 = 1.0, d2 = std::sqrt(2.2 * 2.2 + 9.0);
    // a -> b: {d1, d2}, rank 0.95 * 1 between them; b -> a: d1 alone. The larger is a -> b.
    const double expected = d1 + 0.95 * (d2 - d1);
    EXPECT_NEAR(hd95_mm(a.data(), b.data(), g.D, g.H, g.W, s), expected, 1e-12);
    EXPECT_NEAR(hd95_mm(b.data(), a.data(), g.D, g.H, g.W, s), expected, 1e-12);  // symmetric
}

TEST(SegmentationMetrics, InteriorVoxelsAreNotSurface) {
    // Concentric blocks 3^3 and 5^3: only the shells count. Outer shell -> inner shell: 54 face
    // voxels at 1, 36 edge voxels at sqrt(2), 8 corners at sqrt(3); rank 0.95 * 97 = 92.15 falls
    // among the corners. Inner -> outer: all at 1. Were the inner block's centre a surface voxel,
    // nothing changes; were the outer block's interior (the 3^3) surface, outer -> inner would be 0.
    const Grid g{7, 7, 7};
    const auto inner = block(g, 2, 4), outer = block(g, 1, 5);
    EXPECT_NEAR(hd95_mm(inner.data(), outer.data(), g.D, g.H, g.W, {}), std::sqrt(3.0), 1e-12);
    // The array's edge is outside the mask: a block filling the whole grid has a surface.
    const Grid full{3, 3, 3};
    const auto all = block(full, 0, 2);
    std::vector<uint8_t> centre(27, 0);
    centre[13] = 1;
    EXPECT_NEAR(hd95_mm(all.data(), centre.data(), 3, 3, 3, {}), std::sqrt(3.0), 1e-12);
}

TEST(SegmentationMetrics, Hd95MatchesBruteForceOnRandomMasks) {
    std::mt19937 rng(11);
    const Spacing spacings[] = {{1, 1, 1}, {2.2, 0.5, 1.0}, {0.7, 1.9, 0.45}};
    int compared = 0;
    for (int trial = 0; trial < 30; ++trial) {
        const Grid g{int64_t(1 + trial % 5), int64_t(2 + trial % 7), int64_t(3 + trial % 6)};
        const Spacing& s = spacings[trial % 3];
        const auto a = random_mask(g, 0.15 + 0.02 * (trial % 10), rng);
        const auto b = random_mask(g, 0.4 - 0.02 * (trial % 10), rng);
        const bool ea = std::count(a.begin(), a.end(), 1) == 0, eb = std::count(b.begin(), b.end(), 1) == 0;
        const double ours = hd95_mm(a.data(), b.data(), g.D, g.H, g.W, s);
        if (ea || eb) {
            EXPECT_TRUE(std::isnan(ours)) << "trial " << trial;
            continue;
        }
        EXPECT_NEAR(ours, brute_hd95(a, b, g, s), 1e-9) << "trial " << trial;
        ++compared;
    }
    EXPECT_GT(compared, 20);
}

TEST(SegmentationMetrics, DistanceTransformIsExact) {
    std::mt19937 rng(5);
    const Spacing s{2.2, 0.5, 1.0};
    for (int trial = 0; trial < 12; ++trial) {
        const Grid g{int64_t(2 + trial % 4), int64_t(5 + trial % 3), int64_t(4 + trial % 5)};
        const auto f = random_mask(g, trial < 2 ? 0.01 : 0.05 * (trial % 5 + 1), rng);
        std::vector<double> out(size_t(g.size()));
        squared_distance_transform(f.data(), g.D, g.H, g.W, s, out.data());
        for (int64_t z = 0; z < g.D; ++z)
            for (int64_t y = 0; y < g.H; ++y)
                for (int64_t x = 0; x < g.W; ++x) {
                    double best = std::numeric_limits<double>::infinity();
                    for (int64_t z2 = 0; z2 < g.D; ++z2)
                        for (int64_t y2 = 0; y2 < g.H; ++y2)
                            for (int64_t x2 = 0; x2 < g.W; ++x2)
                                if (f[size_t(g.at(z2, y2, x2))]) {
                                    const double d = dist(s, double(z - z2), double(y - y2), double(x - x2));
                                    best = std::min(best, d * d);
                                }
                    const double got = out[size_t(g.at(z, y, x))];
                    if (std::isinf(best))
                        EXPECT_TRUE(std::isinf(got));
                    else
                        EXPECT_NEAR(got, best, 1e-9) << "trial " << trial << " at " << z << "," << y << "," << x;
                }
    }
}

TEST(SegmentationMetrics, DiceSensitivitySpecificityAndVolumes) {
    // 1 x 2 x 4: prediction 1 1 1 0 / 0 0 0 0, truth 1 1 0 1 / 0 0 0 0.
    const uint8_t p[8] = {1, 1, 1, 0, 0, 0, 0, 0}, t[8] = {1, 1, 0, 1, 0, 0, 0, 0};
    const Spacing s{2.0, 0.5, 1.5};  // 1.5 mm^3 per voxel
    const auto r = score_case(p, t, 1, 2, 4, s, whole_tumour_region(), EmptyRule::brats);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].region, "WT");
    EXPECT_DOUBLE_EQ(r[0].dice, 4.0 / 6.0);           // TP 2, FP 1, FN 1
    EXPECT_DOUBLE_EQ(r[0].sensitivity, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(r[0].specificity, 4.0 / 5.0);    // TN 4
    EXPECT_DOUBLE_EQ(r[0].predicted_ml, 3 * 1.5 / 1000);
    EXPECT_DOUBLE_EQ(r[0].true_ml, 3 * 1.5 / 1000);
    EXPECT_FALSE(r[0].truth_empty);
    EXPECT_FALSE(r[0].prediction_empty);
    // Surfaces are the masks themselves (one row); pred -> truth {0, 0, 1.5 mm} and truth -> pred
    // the same: rank 0.95 * 2 = 1.9, 0.9 of the way from 0 to 1.5.
    EXPECT_NEAR(r[0].hd95_mm, 0.9 * 1.5, 1e-12);
}

TEST(SegmentationMetrics, BothEmptyAndOneEmptyUnderBothRules) {
    const uint8_t zero[8] = {}, one[8] = {0, 0, 1, 0, 0, 0, 0, 0};
    const Spacing s{1, 1, 1};
    const auto regions = whole_tumour_region();
    // both empty
    auto b = score_case(zero, zero, 2, 2, 2, s, regions, EmptyRule::brats)[0];
    EXPECT_DOUBLE_EQ(b.dice, 1.0);
    EXPECT_DOUBLE_EQ(b.hd95_mm, 0.0);
    EXPECT_DOUBLE_EQ(b.sensitivity, 1.0);
    EXPECT_DOUBLE_EQ(b.specificity, 1.0);
    EXPECT_TRUE(b.truth_empty && b.prediction_empty);
    auto i = score_case(zero, zero, 2, 2, 2, s, regions, EmptyRule::ignore)[0];
    EXPECT_TRUE(std::isnan(i.dice));
    EXPECT_TRUE(std::isnan(i.hd95_mm));
    // prediction only (truth empty)
    b = score_case(one, zero, 2, 2, 2, s, regions, EmptyRule::brats)[0];
    EXPECT_DOUBLE_EQ(b.dice, 0.0);
    EXPECT_DOUBLE_EQ(b.hd95_mm, kBratsEmptyHd95Mm);
    EXPECT_TRUE(b.truth_empty && !b.prediction_empty);
    EXPECT_DOUBLE_EQ(b.specificity, 7.0 / 8.0);
    i = score_case(one, zero, 2, 2, 2, s, regions, EmptyRule::ignore)[0];
    EXPECT_TRUE(std::isnan(i.dice));
    EXPECT_TRUE(std::isnan(i.hd95_mm));
    // truth only (prediction empty): Dice 0 under both; HD95 374 or NaN
    b = score_case(zero, one, 2, 2, 2, s, regions, EmptyRule::brats)[0];
    EXPECT_DOUBLE_EQ(b.dice, 0.0);
    EXPECT_DOUBLE_EQ(b.hd95_mm, 374.0);
    EXPECT_DOUBLE_EQ(b.sensitivity, 0.0);
    EXPECT_TRUE(!b.truth_empty && b.prediction_empty);
    i = score_case(zero, one, 2, 2, 2, s, regions, EmptyRule::ignore)[0];
    EXPECT_DOUBLE_EQ(i.dice, 0.0);
    EXPECT_TRUE(std::isnan(i.hd95_mm));
    EXPECT_TRUE(std::isnan(hd95_mm(zero, one, 2, 2, 2, s)));
}

TEST(SegmentationMetrics, BratsRegionsOnALabelMap) {
    // MSD numbering: 1 oedema, 2 non-enhancing, 3 enhancing. One row of 8 voxels.
    const uint8_t t[8] = {0, 1, 1, 2, 2, 3, 3, 0};
    const uint8_t p[8] = {1, 1, 2, 2, 3, 3, 0, 0};
    const auto r = score_case(p, t, 1, 1, 8, {}, brats_regions(), EmptyRule::brats);
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0].region, "WT");
    EXPECT_EQ(r[1].region, "TC");
    EXPECT_EQ(r[2].region, "ET");
    // WT: pred {0..5}, truth {1..6}: TP 5, FP 1, FN 1
    EXPECT_DOUBLE_EQ(r[0].dice, 10.0 / 12.0);
    EXPECT_NEAR(r[0].hd95_mm, 0.75, 1e-12);  // each direction {0 x 5, 1}: rank 0.95 * 5 = 4.75
    // TC: pred {2,3,4,5}, truth {3,4,5,6}: TP 3
    EXPECT_DOUBLE_EQ(r[1].dice, 6.0 / 8.0);
    // ET: pred {4,5}, truth {5,6}: TP 1
    EXPECT_DOUBLE_EQ(r[2].dice, 2.0 / 4.0);
    EXPECT_DOUBLE_EQ(r[2].sensitivity, 0.5);
    EXPECT_DOUBLE_EQ(r[2].specificity, 5.0 / 6.0);
    // Binary predictions scored against raw MSD labels: whole_tumour_region counts 1, 2 and 3.
    const uint8_t binary[8] = {1, 1, 1, 1, 1, 1, 0, 0};
    EXPECT_DOUBLE_EQ(score_case(binary, t, 1, 1, 8, {}, whole_tumour_region(), EmptyRule::brats)[0].dice,
                     10.0 / 12.0);
}

TEST(SegmentationMetrics, SummarizeLeavesOutNaN) {
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    Statistic st = summarize({1.0, nan, 3.0, 2.0, inf});
    EXPECT_EQ(st.count, 3);
    EXPECT_DOUBLE_EQ(st.mean, 2.0);
    EXPECT_DOUBLE_EQ(st.median, 2.0);
    EXPECT_DOUBLE_EQ(st.std, std::sqrt(2.0 / 3.0));
    st = summarize({10.0, 1.0, 3.0, 2.0});
    EXPECT_DOUBLE_EQ(st.median, 2.5);
    EXPECT_EQ(st.count, 4);
    st = summarize({nan, nan});
    EXPECT_EQ(st.count, 0);
    EXPECT_TRUE(std::isnan(st.mean) && std::isnan(st.median) && std::isnan(st.std));
    EXPECT_EQ(summarize({}).count, 0);
}

TEST(SegmentationMetrics, EmptyRuleParsingAndBadArguments) {
    EXPECT_EQ(parse_empty_rule("brats"), EmptyRule::brats);
    EXPECT_EQ(parse_empty_rule("ignore"), EmptyRule::ignore);
    EXPECT_STREQ(empty_rule_name(EmptyRule::ignore), "ignore");
    try {
        parse_empty_rule("monai");
        FAIL() << "no UsageError";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("--empty"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("monai"), std::string::npos) << e.what();
    }
    const uint8_t m[4] = {1, 0, 0, 1};
    EXPECT_THROW(score_case(m, m, 1, 2, 2, {1, 0, 1}, whole_tumour_region(), EmptyRule::brats), std::invalid_argument);
    EXPECT_THROW(score_case(m, m, 1, 2, 2, {1, 1, std::nan("")}, whole_tumour_region(), EmptyRule::brats),
                 std::invalid_argument);
    EXPECT_THROW(score_case(m, m, 0, 2, 2, {}, whole_tumour_region(), EmptyRule::brats), std::invalid_argument);
    EXPECT_THROW(score_case(m, m, 1, 2, 2, {}, {}, EmptyRule::brats), std::invalid_argument);
    EXPECT_THROW(score_case(m, m, 1, 2, 2, {}, {{"X", {256}}}, EmptyRule::brats), std::invalid_argument);
    EXPECT_THROW(hd95_mm(m, m, 1, 2, 2, {-1, 1, 1}), std::invalid_argument);
}
