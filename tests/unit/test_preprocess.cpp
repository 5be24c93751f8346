// The per-case transforms of unet_prepare, against direct computations.
#include <gtest/gtest.h>

#include <cmath>

#include "unet/core/check.h"
#include "unet/data/preprocess.h"

using namespace unet;

TEST(Preprocess, DistmisCropDropsTwoSlicesInFrontAndOneBehind) {
    Volume v;
    v.resize(2, kMsdDepth, 2, 3);
    for (int64_t c = 0; c < 2; ++c)
        for (int64_t z = 0; z < kMsdDepth; ++z)
            for (int64_t i = 0; i < 6; ++i) v.channel(c)[z * 6 + i] = float(c * 1000 + z);
    crop_depth_distmis(v);
    ASSERT_EQ(v.depth, kDistmisDepth);
    EXPECT_EQ(v.channel(0)[0], 2.f);
    EXPECT_EQ(v.channel(1)[(kDistmisDepth - 1) * 6], 1000.f + 153.f);
    Volume other;
    other.resize(1, 40, 2, 2);
    crop_depth_distmis(other);
    EXPECT_EQ(other.depth, 40);
}

TEST(Preprocess, StandardizeUsesBrainVoxelsOnly) {
    Volume v;
    v.resize(2, 1, 1, 6);
    const float a[6] = {0, 1, 2, 3, 0, 0}, b[6] = {0, 5, 5, 5, 7, 0};
    std::copy(a, a + 6, v.channel(0));
    std::copy(b, b + 6, v.channel(1));
    standardize_brain(v);  // brain = voxels 1..4 (any channel non-zero)
    EXPECT_EQ(v.channel(0)[0], 0.f);
    EXPECT_EQ(v.channel(0)[5], 0.f);
    double mean = 0, var = 0;
    for (int i = 1; i <= 4; ++i) mean += v.channel(0)[i];
    for (int i = 1; i <= 4; ++i) var += v.channel(0)[i] * v.channel(0)[i];
    EXPECT_NEAR(mean / 4, 0.0, 1e-6);
    EXPECT_NEAR(var / 4, 1.0, 1e-5);
    // channel 0 on brain voxels: {1, 2, 3, 0}: mean 1.5, std sqrt(1.25)
    EXPECT_NEAR(v.channel(0)[4], (0 - 1.5) / std::sqrt(1.25), 1e-5);
}

TEST(Preprocess, LabelsStayMsdAndOthersAreRefusedByValue) {
    Volume l;
    l.resize(1, 1, 1, 5);
    l.data = {0, 1, 2, 3, 0};
    EXPECT_NO_THROW(check_labels(l));
    l.data[2] = 4;
    try {
        check_labels(l);
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("label value 4 at voxel 2 outside 0-3"), std::string::npos) << e.what();
    }
}

// Each nested region is resized on its own: WT is exactly the binary mask resized and thresholded,
// and the regions stay nested (ET inside TC inside WT).
TEST(Preprocess, LabelResizeKeepsRegionsNestedAndWholeTumourAsBinary) {
    Volume l;
    l.resize(1, 1, 1, 8);
    l.data = {0, 1, 1, 2, 3, 3, 1, 0};
    const Volume up = resize_labels(l, 1, 1, 13);
    Volume wt = l;
    for (float& v : wt.data) v = v > 0 ? 1.f : 0.f;
    const Volume wt_up = resize_linear(wt, 1, 1, 13);
    bool et_seen = false;
    for (size_t i = 0; i < up.data.size(); ++i) {
        EXPECT_EQ(up.data[i] >= 1.f, wt_up.data[i] >= 0.5f) << i;
        EXPECT_TRUE(up.data[i] == 0 || up.data[i] == 1 || up.data[i] == 2 || up.data[i] == 3);
        et_seen |= up.data[i] == 3.f;
    }
    EXPECT_TRUE(et_seen);
    const Volume same = resize_labels(l, 1, 1, 8);  // the identity size changes nothing
    EXPECT_EQ(same.data, l.data);
}

TEST(Preprocess, LinearResizeKeepsConstantsAndMatchesHalfPixelRule) {
    Volume v;
    v.resize(1, 1, 1, 2);
    v.data = {0.f, 1.f};
    const Volume up = resize_linear(v, 1, 1, 4);
    // align_corners=False: out x -> src (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped)
    EXPECT_NEAR(up.data[0], 0.0, 1e-6);
    EXPECT_NEAR(up.data[1], 0.25, 1e-6);
    EXPECT_NEAR(up.data[2], 0.75, 1e-6);
    EXPECT_NEAR(up.data[3], 1.0, 1e-6);
    Volume c;
    c.resize(2, 3, 4, 5);
    std::fill(c.data.begin(), c.data.end(), 2.5f);
    const Volume r = resize_linear(c, 5, 7, 3);
    for (float x : r.data) EXPECT_FLOAT_EQ(x, 2.5f);
}

TEST(Preprocess, SplitIsSeededAndFollowsFractions) {
    const auto a = split_cases(20, {0.7, 0.15, 0.15}, 3), b = split_cases(20, {0.7, 0.15, 0.15}, 3);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, split_cases(20, {0.7, 0.15, 0.15}, 4));
    int count[3] = {0, 0, 0};
    for (int s : a) ++count[s];
    EXPECT_EQ(count[0], 14);
    EXPECT_EQ(count[1], 3);
    EXPECT_EQ(count[2], 3);
}

TEST(Preprocess, SplitFlagMustSumToOne) {
    EXPECT_NO_THROW(parse_split("0.8,0.1,0.1"));
    EXPECT_THROW(parse_split("0.8,0.1,0.2"), UsageError);
    EXPECT_THROW(parse_split("0.8,0.2"), UsageError);
    EXPECT_THROW(parse_split("a,b,c"), UsageError);
}
