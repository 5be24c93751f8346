// The synthetic MSD BrainTumour generator: deterministic in (seed, case) and independent of the
// thread count, labels 0-3 nested as oedema > enhancing rim > necrosis, some tumour-free cases,
// the contrasts each modality is meant to show, and the property that makes it a segmentation
// problem: no single channel thresholded at any level finds the whole tumour (Dice < 0.7), while
// two channels together do (> 0.8); the tumour core and enhancing tumour follow simple voxel
// rules too (> 0.85, > 0.95). Also the files write_synthetic_msd leaves behind.
#include <gtest/gtest.h>
#include <nifti1_io.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "unet/data/msd_index.h"
#include "unet/data/nifti.h"
#include "unet/data/synthetic_msd.h"
#include "../support/test_files.h"

using unet::test_support::TempDir;

using namespace unet;
namespace fs = std::filesystem;

namespace {

constexpr int kFlair = 0, kT1 = 1, kT1gd = 2, kT2 = 3;

SyntheticSpec small_spec(uint64_t seed = 7, int cases = 10) {
    SyntheticSpec s;
    s.width = 48, s.height = 40, s.depth = 24, s.seed = seed, s.cases = cases;
    return s;
}

struct Case {
    Volume image, label;
};

Case make(const SyntheticSpec& s, int i) {
    Case c;
    synthesize_case(s, i, c.image, c.label);
    return c;
}

// Per-channel z-score over brain (non-zero) voxels, as the prepared dataset normalizes.
std::vector<float> zscore(const Volume& im, int c, const std::vector<uint8_t>& brain) {
    const float* x = im.channel(c);
    double s = 0, s2 = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < im.voxels(); ++i)
        if (brain[size_t(i)]) s += x[i], s2 += double(x[i]) * x[i], ++n;
    const double mu = s / double(n), sd = std::sqrt(std::max(1e-12, s2 / double(n) - mu * mu));
    std::vector<float> z(size_t(im.voxels()));
    for (int64_t i = 0; i < im.voxels(); ++i) z[size_t(i)] = float((x[i] - mu) / sd);
    return z;
}

// The four modalities, each z-scored over the brain.
std::vector<std::vector<float>> zscored_channels(const Volume& im, const std::vector<uint8_t>& brain) {
    std::vector<std::vector<float>> z;
    for (int ch = 0; ch < 4; ++ch) z.push_back(zscore(im, ch, brain));
    return z;
}

std::vector<uint8_t> brain_mask(const Volume& im) {
    std::vector<uint8_t> b(size_t(im.voxels()));
    for (int64_t i = 0; i < im.voxels(); ++i) b[size_t(i)] = im.channel(0)[i] != 0.f;
    return b;
}

// Calls visit(z, label) for every brain voxel of the spec's cases: z its four channels, each
// z-scored over its case's brain, and label its value 0-3.
template <class Visit>
void for_each_brain_voxel(const SyntheticSpec& s, Visit visit) {
    for (int i = 0; i < s.cases; ++i) {
        const Case c = make(s, i);
        const auto brain = brain_mask(c.image);
        const std::vector<std::vector<float>> z = zscored_channels(c.image, brain);
        for (int64_t v = 0; v < c.image.voxels(); ++v) {
            if (!brain[size_t(v)]) continue;
            const float zv[4] = {z[0][size_t(v)], z[1][size_t(v)], z[2][size_t(v)], z[3][size_t(v)]};
            visit(zv, int(c.label.data[size_t(v)]));
        }
    }
}

// Voxel counts for the Dice of a rule's mask against a labelled region, summed over cases.
struct Overlap {
    double both = 0, predicted = 0, labelled = 0;
    void add(bool p, bool l) { both += p && l, predicted += p, labelled += l; }
    double dice() const { return 2 * both / (predicted + labelled); }
};

}  // namespace

TEST(SyntheticMsd, DeterministicForSeedAndIndependentOfThreads) {
    const SyntheticSpec s = small_spec();
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const Case a = make(s, 1);
    omp_set_num_threads(std::max(2, saved));
    const Case b = make(s, 1);
    omp_set_num_threads(saved);
    EXPECT_EQ(a.image.data, b.image.data);
    EXPECT_EQ(a.label.data, b.label.data);

    SyntheticSpec other = s;
    other.seed = s.seed + 1;
    EXPECT_NE(make(other, 1).image.data, a.image.data);
    EXPECT_NE(make(s, 2).image.data, a.image.data);
}

TEST(SyntheticMsd, ShapesBrainMaskAndLabelValues) {
    const SyntheticSpec s = small_spec();
    for (int i = 0; i < 4; ++i) {
        const Case c = make(s, i);
        EXPECT_EQ(c.image.shape_string(), "4x24x40x48");
        EXPECT_EQ(c.label.shape_string(), "1x24x40x48");
        int64_t brain = 0;
        for (int64_t v = 0; v < c.image.voxels(); ++v) {
            const float l = c.label.data[size_t(v)];
            ASSERT_TRUE(l == 0.f || l == 1.f || l == 2.f || l == 3.f) << l;
            const bool in = c.image.channel(0)[v] != 0.f;
            brain += in;
            // Skull-stripped: every channel is zero outside the brain and positive inside.
            for (int ch = 0; ch < 4; ++ch) {
                ASSERT_EQ(c.image.channel(ch)[v] > 0.f, in) << "case " << i << " channel " << ch << " voxel " << v;
                ASSERT_TRUE(std::isfinite(c.image.channel(ch)[v]));
            }
            if (!in) {
                ASSERT_EQ(l, 0.f);
            }
        }
        // The brain fills a realistic part of the field of view (BraTS: about 15-20%).
        EXPECT_GT(brain, c.image.voxels() / 10);
        EXPECT_LT(brain, c.image.voxels() / 3);
    }
}

TEST(SyntheticMsd, SomeCasesWithoutTumourAndAllLabelsOccur) {
    const SyntheticSpec s = small_spec(3, 10);
    int empty = 0, with = 0;
    std::array<int64_t, 4> counts{};
    for (int i = 0; i < s.cases; ++i) {
        const Case c = make(s, i);
        int64_t t = 0;
        for (float l : c.label.data) counts[size_t(l)]++, t += l > 0;
        (t == 0 ? empty : with)++;
        if (i % 5 == 3) {
            EXPECT_EQ(t, 0) << "case " << i << " should be tumour-free";
        }
    }
    EXPECT_GE(empty, 2);
    EXPECT_GE(with, 6);
    EXPECT_GT(counts[1], 0);
    EXPECT_GT(counts[2], 0);
    EXPECT_GT(counts[3], 0);
    // Oedema is the largest region, as in BraTS.
    EXPECT_GT(counts[1], counts[2]);
    EXPECT_GT(counts[1], counts[3]);
}

// Oedema (1) surrounds the core; necrosis (2) sits inside the enhancing rim (3).
TEST(SyntheticMsd, TumoursAreNestedShells) {
    SyntheticSpec s = small_spec(5, 6);
    s.width = 80, s.height = 80, s.depth = 52;
    int64_t core_faces = 0, core_faces_on_oedema = 0, core_faces_on_healthy = 0;
    int64_t nec_faces = 0, nec_faces_on_rim = 0;
    for (int i = 0; i < s.cases; ++i) {
        const Case c = make(s, i);
        const int64_t W = s.width, H = s.height, D = s.depth;
        auto lab = [&](int64_t z, int64_t y, int64_t x) { return int(c.label.data[size_t((z * H + y) * W + x)]); };
        for (int64_t z = 1; z + 1 < D; ++z)
            for (int64_t y = 1; y + 1 < H; ++y)
                for (int64_t x = 1; x + 1 < W; ++x) {
                    const int l = lab(z, y, x);
                    if (l < 2) continue;
                    const int64_t nb[6][3] = {{z - 1, y, x}, {z + 1, y, x}, {z, y - 1, x}, {z, y + 1, x}, {z, y, x - 1}, {z, y, x + 1}};
                    for (const auto& n : nb) {
                        const int m = lab(n[0], n[1], n[2]);
                        const bool in_brain = c.image.channel(0)[(n[0] * H + n[1]) * W + n[2]] != 0.f;
                        if (m < 2 && in_brain) {
                            ++core_faces;
                            core_faces_on_oedema += m == 1;
                            core_faces_on_healthy += m == 0;
                        }
                        if (l == 2 && m != 2) {
                            ++nec_faces;
                            nec_faces_on_rim += m == 3;
                        }
                    }
                }
    }
    ASSERT_GT(core_faces, 100);
    ASSERT_GT(nec_faces, 20);
    EXPECT_GE(double(core_faces_on_oedema) / double(core_faces), 0.97);
    EXPECT_GE(double(nec_faces_on_rim) / double(nec_faces), 0.9);
}

// Mean intensity of each region relative to healthy brain, per modality: the contrasts the
// header promises (FLAIR oedema bright, T1w tumour darker, T1gd rim bright and necrosis dark,
// T2w oedema and core bright).
TEST(SyntheticMsd, ModalitiesShowTheirContrasts) {
    SyntheticSpec s = small_spec(11, 6);
    s.width = 80, s.height = 80, s.depth = 52;
    double sum[4][4] = {}, cnt[4] = {};
    std::vector<float> healthy_t1;  // mostly white matter; grey matter and fluid are darker in T1w
    for_each_brain_voxel(s, [&](const float* z, int l) {
        cnt[l] += 1;
        if (l == 0) healthy_t1.push_back(z[kT1]);
        for (int ch = 0; ch < 4; ++ch) sum[l][ch] += z[ch];
    });
    auto mean = [&](int l, int ch) { return sum[l][ch] / cnt[l]; };
    EXPECT_GT(mean(1, kFlair), mean(0, kFlair) + 0.8);   // oedema bright in FLAIR
    EXPECT_GT(mean(1, kT2), mean(0, kT2) + 0.8);         // oedema bright in T2
    EXPECT_GT(mean(2, kT2), mean(0, kT2) + 1.0);         // necrosis bright in T2
    EXPECT_GT(mean(3, kT1gd), mean(0, kT1gd) + 2.0);     // enhancing rim bright in T1gd
    EXPECT_LT(mean(2, kT1gd), mean(0, kT1gd) - 1.0);     // necrotic core dark in T1gd
    std::nth_element(healthy_t1.begin(), healthy_t1.begin() + healthy_t1.size() / 2, healthy_t1.end());
    const double t1_median = healthy_t1[healthy_t1.size() / 2];
    for (int l = 1; l <= 3; ++l) EXPECT_LT(mean(l, kT1), t1_median - (l == 1 ? 0.1 : 0.5)) << "label " << l;  // darker in T1w
    EXPECT_GT(mean(1, kT1), mean(2, kT1));  // ... oedema only slightly
}

// The property that makes the data worth training on. Thresholds are global over cases, on data
// z-scored per case and channel over the brain (what the loader feeds the network).
TEST(SyntheticMsd, NoSingleChannelThresholdFindsTheTumourButTwoChannelsDo) {
    SyntheticSpec s = small_spec(1, 10);
    s.width = 96, s.height = 96, s.depth = 62;
    constexpr int kBins = 320;
    constexpr double kLo = -6, kHi = 10;
    auto bin = [](float z) { return std::min(kBins - 1, std::max(0, int((z - kLo) / (kHi - kLo) * kBins))); };
    std::vector<double> pos(4 * kBins), neg(4 * kBins);
    constexpr int kB2 = 128;
    auto bin2 = [](float z) { return std::min(kB2 - 1, std::max(0, int((z - kLo) / (kHi - kLo) * kB2))); };
    std::vector<double> pos2(kB2 * kB2), neg2(kB2 * kB2);  // [T2 bin][FLAIR bin]
    double tumour = 0;
    for_each_brain_voxel(s, [&](const float* z, int l) {
        const bool t = l > 0;
        tumour += t;
        for (int ch = 0; ch < 4; ++ch) (t ? pos : neg)[size_t(ch * kBins + bin(z[ch]))] += 1;
        (t ? pos2 : neg2)[size_t(bin2(z[kT2]) * kB2 + bin2(z[kFlair]))] += 1;
    });
    ASSERT_GT(tumour, 1000);
    const char* names[4] = {"FLAIR", "T1w", "T1gd", "T2w"};
    double best_single = 0;
    for (int ch = 0; ch < 4; ++ch) {
        double best = 0;
        // Above a level, and below a level: every bin edge.
        for (int dir = 0; dir < 2; ++dir) {
            double tp = 0, fp = 0;
            for (int k = 0; k < kBins; ++k) {
                const int b = dir == 0 ? kBins - 1 - k : k;
                tp += pos[size_t(ch * kBins + b)];
                fp += neg[size_t(ch * kBins + b)];
                best = std::max(best, 2 * tp / (tp + fp + tumour));
            }
        }
        std::printf("[ synthetic ] best single-channel Dice %-5s %.3f\n", names[ch], best);
        EXPECT_LT(best, 0.7) << names[ch] << " alone separates the tumour";
        best_single = std::max(best_single, best);
    }
    // T2 bright (tumour and fluid) AND FLAIR not dark (fluid suppressed): 2D suffix sums.
    std::vector<double> sp((kB2 + 1) * (kB2 + 1)), sn((kB2 + 1) * (kB2 + 1));
    auto at = [](std::vector<double>& a, int i, int j) -> double& { return a[size_t(i * (kB2 + 1) + j)]; };
    for (int i = kB2 - 1; i >= 0; --i)
        for (int j = kB2 - 1; j >= 0; --j) {
            at(sp, i, j) = pos2[size_t(i * kB2 + j)] + at(sp, i + 1, j) + at(sp, i, j + 1) - at(sp, i + 1, j + 1);
            at(sn, i, j) = neg2[size_t(i * kB2 + j)] + at(sn, i + 1, j) + at(sn, i, j + 1) - at(sn, i + 1, j + 1);
        }
    double best2 = 0;
    for (int i = 0; i < kB2; ++i)
        for (int j = 0; j < kB2; ++j) best2 = std::max(best2, 2 * at(sp, i, j) / (at(sp, i, j) + at(sn, i, j) + tumour));
    std::printf("[ synthetic ] T2w-high AND FLAIR-high Dice %.3f (best single channel %.3f)\n", best2, best_single);
    EXPECT_GT(best2, 0.8);
    EXPECT_GT(best2, best_single + 0.2);
}

// The other two BraTS regions, tumour core TC = {2, 3} and enhancing tumour ET = {3}, follow
// simple voxel-wise rules on the same z-scored channels, with fixed levels global over cases:
//   ET: T1gd > 2. Only the rim takes up contrast (about 3.8 sd above the brain mean).
//   TC: T2w > 0.25 and FLAIR > -0.25 (inside the whole tumour; a little looser than the best WT
//       levels because necrosis is near tissue level in FLAIR) and (T1gd > 2 or T1gd < -1.125):
//       the rim is bright in T1gd, the necrosis darker than the oedema around it (about -1.4 sd
//       against -0.3 sd). "T1w dark" in place of "T1gd dark" is worse (about 0.87-0.90).
// Measured on these 10 cases: ET 1.000, TC 0.924; seeds 1-4 give ET 0.997-1.000, TC 0.905-0.925.
// The floors sit below that.
TEST(SyntheticMsd, TumourCoreAndEnhancingTumourFollowSimpleVoxelRules) {
    SyntheticSpec s = small_spec(1, 10);
    s.width = 96, s.height = 96, s.depth = 62;
    auto enhancing = [](const float* z) { return z[kT1gd] > 2.0f; };
    auto core = [&](const float* z) {
        return z[kT2] > 0.25f && z[kFlair] > -0.25f && (enhancing(z) || z[kT1gd] < -1.125f);
    };
    Overlap tc, et;
    for_each_brain_voxel(s, [&](const float* z, int l) {
        tc.add(core(z), l == 2 || l == 3);
        et.add(enhancing(z), l == 3);
    });
    ASSERT_GT(tc.labelled, 1000);
    ASSERT_GT(et.labelled, 500);
    std::printf("[ synthetic ] TC rule Dice %.3f, ET rule Dice %.3f\n", tc.dice(), et.dice());
    EXPECT_GT(tc.dice(), 0.85);
    EXPECT_GT(et.dice(), 0.95);
}

TEST(SyntheticMsd, WritesAnMsdDataset) {
    TempDir dir;
    const SyntheticSpec s = small_spec(9, 3);
    std::vector<std::pair<int, int>> calls;
    write_synthetic_msd(dir.path(), s, [&](int done, int total) { calls.emplace_back(done, total); });
    EXPECT_EQ(calls, (std::vector<std::pair<int, int>>{{1, 3}, {2, 3}, {3, 3}}));

    std::ifstream in(fs::path(dir.path()) / "dataset.json");
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j["name"], "BrainTumour");
    EXPECT_EQ(j["modality"], (nlohmann::json{{"0", "FLAIR"}, {"1", "T1w"}, {"2", "t1gd"}, {"3", "T2w"}}));
    EXPECT_EQ(j["labels"], (nlohmann::json{{"0", "background"}, {"1", "edema"}, {"2", "non-enhancing tumor"},
                                           {"3", "enhancing tumour"}}));
    EXPECT_EQ(j["numTraining"], 3);
    ASSERT_EQ(j["training"].size(), 3u);
    EXPECT_EQ(j["training"][0]["image"], "./imagesTr/BRATS_001.nii.gz");
    EXPECT_EQ(j["training"][2]["label"], "./labelsTr/BRATS_003.nii.gz");

    const MsdIndex idx = read_msd_index(dir.path());
    ASSERT_EQ(idx.cases.size(), 3u);
    EXPECT_EQ(idx.cases[1].id, "BRATS_002");
    for (int i = 0; i < 3; ++i) {
        const Case c = make(s, i);
        const Volume im = read_nifti(idx.cases[size_t(i)].image);
        const Volume lb = read_nifti(idx.cases[size_t(i)].label);
        ASSERT_EQ(im.shape_string(), "4x24x40x48");
        EXPECT_EQ(lb.data, c.label.data);
        // int16 with a scl_slope: values within half a quantum, zero background exact.
        std::unique_ptr<nifti_image, void (*)(nifti_image*)> h(nifti_image_read(idx.cases[size_t(i)].image.c_str(), 0),
                                                               nifti_image_free);
        ASSERT_TRUE(h);
        EXPECT_EQ(h->datatype, DT_INT16);
        EXPECT_GT(h->scl_slope, 0.f);
        EXPECT_EQ(h->scl_inter, 0.f);
        for (size_t v = 0; v < im.data.size(); ++v) {
            ASSERT_NEAR(im.data[v], c.image.data[v], 0.5 * h->scl_slope + 1e-3) << v;
            ASSERT_EQ(im.data[v] == 0.f, c.image.data[v] == 0.f) << v;
        }
        std::unique_ptr<nifti_image, void (*)(nifti_image*)> hl(nifti_image_read(idx.cases[size_t(i)].label.c_str(), 0),
                                                                nifti_image_free);
        ASSERT_TRUE(hl);
        EXPECT_EQ(hl->datatype, DT_UINT8);
    }
}

TEST(SyntheticMsd, Errors) {
    TempDir dir;
    SyntheticSpec tiny = small_spec();
    tiny.width = 4;
    Volume a, b;
    EXPECT_THROW(synthesize_case(tiny, 0, a, b), std::runtime_error);
    const std::string blocker = dir.path() + "/file";
    std::ofstream(blocker) << "x";
    SyntheticSpec s = small_spec(1, 1);
    try {
        write_synthetic_msd(blocker + "/msd", s);
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("msd"), std::string::npos) << e.what();
    }
    s.cases = 0;
    EXPECT_THROW(write_synthetic_msd(dir.path() + "/empty", s), std::runtime_error);
}
