// Tumour regions: --labels parsing and its one-line refusals, label maps to region masks, and the
// label map nnU-Net rebuilds from region outputs (a perfect prediction gives the source labels).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "unet/core/check.h"
#include "unet/data/label_regions.h"

using namespace unet;

namespace {

std::string usage_error(const std::string& text) {
    try {
        parse_regions(text);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Every label 0-3 at least twice, in a shuffled order.
const std::vector<uint8_t> kLabels{0, 3, 1, 2, 2, 0, 3, 1, 0, 0, 1, 3};

}  // namespace

TEST(LabelRegions, ParsesNamesListsAndTheRegionsShorthand) {
    EXPECT_EQ(regions_text(parse_regions("wt")), "wt");
    EXPECT_EQ(regions_text(parse_regions("regions")), "wt,tc,et");
    EXPECT_EQ(regions_text(parse_regions("WT,ET")), "wt,et");
    EXPECT_EQ(regions_text(parse_regions("et,wt")), "et,wt");  // the user's order is the channels' order
    const Regions r = parse_regions("regions");
    EXPECT_EQ(r[0].labels, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(r[1].labels, (std::vector<int>{2, 3}));
    EXPECT_EQ(r[2].labels, (std::vector<int>{3}));
    EXPECT_TRUE(is_whole_tumour_only(parse_regions("wt")));
    EXPECT_FALSE(is_whole_tumour_only(parse_regions("tc")));
}

TEST(LabelRegions, UnknownDuplicateAndEmptyNamesAreRefusedNamingTheFlag) {
    const std::string unknown = usage_error("wt,ncr");
    EXPECT_TRUE(contains(unknown, "--labels: unknown region 'ncr'")) << unknown;
    const std::string twice = usage_error("wt,tc,wt");
    EXPECT_TRUE(contains(twice, "--labels: region 'wt' is listed twice")) << twice;
    EXPECT_TRUE(contains(usage_error("wt,,et"), "--labels")) << usage_error("wt,,et");
    EXPECT_TRUE(contains(usage_error(""), "--labels"));
}

TEST(LabelRegions, MasksFollowTheRegionsLabelSets) {
    const Regions r = brats_regions();
    const int64_t V = int64_t(kLabels.size());
    std::vector<float> m(size_t(3 * V));
    region_masks(kLabels.data(), V, r, m.data());
    for (int64_t i = 0; i < V; ++i) {
        EXPECT_EQ(m[size_t(i)], kLabels[size_t(i)] >= 1 ? 1.f : 0.f) << i;          // WT
        EXPECT_EQ(m[size_t(V + i)], kLabels[size_t(i)] >= 2 ? 1.f : 0.f) << i;      // TC
        EXPECT_EQ(m[size_t(2 * V + i)], kLabels[size_t(i)] == 3 ? 1.f : 0.f) << i;  // ET
    }
    const uint8_t four[2] = {0, 4};
    try {
        region_masks(four, 2, r, m.data());
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), "label value 4")) << e.what();
    }
}

// The truth's own region masks, used as a perfect prediction, rebuild the label map exactly, in
// any channel order; a whole-tumour model gives the binary mask.
TEST(LabelRegions, PerfectRegionPredictionsRebuildTheSourceLabels) {
    const int64_t V = int64_t(kLabels.size());
    for (const std::string order : {"wt,tc,et", "et,tc,wt", "tc,wt,et"}) {
        const Regions r = parse_regions(order);
        std::vector<float> p(size_t(3 * V));
        region_masks(kLabels.data(), V, r, p.data());
        std::vector<uint8_t> back(kLabels.size());
        label_map_from_regions(p.data(), V, r, back.data());
        EXPECT_EQ(back, kLabels) << order;
    }
    std::vector<float> wt(kLabels.size());
    region_masks(kLabels.data(), V, whole_tumour_region(), wt.data());
    std::vector<uint8_t> binary(kLabels.size());
    label_map_from_regions(wt.data(), V, whole_tumour_region(), binary.data());
    for (int64_t i = 0; i < V; ++i) EXPECT_EQ(binary[size_t(i)], kLabels[size_t(i)] ? 1 : 0) << i;
}

// nnU-Net's rule on outputs that do not nest: ET wins over TC, TC over WT, and a voxel only the
// ET channel marks is still enhancing tumour.
TEST(LabelRegions, NonNestedOutputsPaintTheSmallestRegionLast) {
    const Regions r = brats_regions();
    //                      WT            TC            ET
    const std::vector<float> p{1, 1, 0, 0,  0, 1, 1, 0,  0, 0, 1, 0.4f};
    std::vector<uint8_t> out(4);
    label_map_from_regions(p.data(), 4, r, out.data());
    EXPECT_EQ(out, (std::vector<uint8_t>{1, 2, 3, 0}));
}
