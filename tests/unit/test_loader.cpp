// Sharding, order determinism, patches and augmentation of the Loader, on real HDF5 files.
#include <gtest/gtest.h>

#include <set>

#include "unet/data/hdf5_dataset.h"
#include "unet/data/loader.h"

using namespace unet;

namespace {

// A dataset whose sample i has every image voxel of channel c equal to 100 i + c and a mask with
// a single tumour voxel at a known place.
std::string make_dataset(const std::string& name, int64_t n, const std::vector<int64_t>& spatial) {
    const std::string path = ::testing::TempDir() + name;
    DatasetAttributes a;
    a.mode = spatial.size() == 3 ? "3d" : "2d";
    a.channels = 2;
    DatasetWriter w(path, a, spatial);
    w.add_split("train", n);
    int64_t V = 1;
    for (auto s : spatial) V *= s;
    std::vector<float> img(size_t(2 * V));
    std::vector<uint8_t> msk(size_t(V), 0);
    msk[size_t(V - 1)] = 1;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t c = 0; c < 2; ++c) std::fill(img.begin() + c * V, img.begin() + (c + 1) * V, float(100 * i + c + 1));
        w.write_sample("train", i, img.data(), msk.data(), "case" + std::to_string(i));
    }
    w.finish();
    return path;
}

}  // namespace

TEST(Loader, SharesAreDisjointAndCoverTheGlobalBatch) {
    for (int world : {1, 2, 3, 5})
        for (int64_t batch : {5, 8, 12}) {
            if (batch < world) continue;
            std::multiset<int64_t> all;
            for (int r = 0; r < world; ++r)
                for (int64_t p : Loader::share(40, batch, r, world, 3)) all.insert(p);
            ASSERT_EQ(int64_t(all.size()), batch);
            for (int64_t p = 3 * batch; p < 4 * batch; ++p) EXPECT_EQ(all.count(p), 1u) << world << " " << batch;
        }
}

TEST(Loader, EveryWorkerRunsTheSameNumberOfStepsAndSeesEverySample) {
    const std::string path = make_dataset("loader_a.h5", 11, {4, 4});
    std::multiset<int64_t> seen;
    int64_t steps = -1;
    for (int r = 0; r < 3; ++r) {
        LoaderConfig c;
        c.path = path;
        c.global_batch = 4;
        c.rank = r;
        c.world = 3;
        Loader l(c);
        if (steps < 0) steps = l.steps_per_epoch();
        EXPECT_EQ(l.steps_per_epoch(), steps);
        l.start_epoch(0);
        Batch b;
        int64_t k = 0;
        while (l.next(b)) {
            ++k;
            for (int64_t i = 0; i < b.n; ++i) {
                seen.insert(b.indices[size_t(i)]);
                EXPECT_EQ(b.images[size_t(i * 2 * 16)], float(100 * b.indices[size_t(i)] + 1));
            }
        }
        EXPECT_EQ(k, steps);
    }
    EXPECT_EQ(steps, 3);                  // ceil(11 / 4)
    EXPECT_EQ(int64_t(seen.size()), 12);  // 3 full batches of 4: the last wraps around
    for (int64_t i = 0; i < 11; ++i) EXPECT_GE(seen.count(i), 1u);
}

TEST(Loader, OrderDependsOnSeedAndEpochOnly) {
    const std::string path = make_dataset("loader_b.h5", 16, {4, 4});
    auto order = [&](uint64_t seed, int epoch) {
        LoaderConfig c;
        c.path = path;
        c.global_batch = 4;
        c.seed = seed;
        Loader l(c);
        l.start_epoch(epoch);
        Batch b;
        std::vector<int64_t> o;
        while (l.next(b)) o.insert(o.end(), b.indices.begin(), b.indices.end());
        return o;
    };
    EXPECT_EQ(order(1, 0), order(1, 0));
    EXPECT_NE(order(1, 0), order(1, 1));
    EXPECT_NE(order(1, 0), order(2, 0));
}

TEST(Loader, PatchesAndAugmentationAreReproducibleAndForegroundBiased) {
    const std::string path = make_dataset("loader_c.h5", 4, {8, 8, 8});
    LoaderConfig c;
    c.path = path;
    c.global_batch = 4;
    c.patch = {4, 4, 4};
    c.fg_fraction = 1.f;
    c.augment = true;
    auto first = [&]() {
        Loader l(c);
        l.start_epoch(0);
        Batch b;
        EXPECT_TRUE(l.next(b));
        return b;
    };
    const Batch a = first(), b = first();
    EXPECT_EQ(a.images, b.images);
    EXPECT_EQ(a.masks, b.masks);
    EXPECT_EQ(a.spatial, (Dims{4, 4, 4}));
    // Every patch was centred on the only tumour voxel, so it contains it.
    for (int64_t i = 0; i < a.n; ++i) {
        float s = 0;
        for (int64_t k = 0; k < 64; ++k) s += a.masks[size_t(i * 64 + k)];
        EXPECT_EQ(s, 1.f) << "patch " << i;
    }
    c.patch = {16, 4, 4};
    EXPECT_THROW(Loader{c}, std::runtime_error);
}

// Reading ahead into the next epoch must not change what that epoch delivers.
TEST(Loader, ReadAheadAcrossEpochsKeepsTheOrder) {
    const std::string path = make_dataset("loader_d.h5", 10, {4, 4});
    LoaderConfig c;
    c.path = path;
    c.global_batch = 3;
    c.seed = 9;
    auto epoch_order = [](Loader& l, int epoch) {
        l.start_epoch(epoch);
        Batch b;
        std::vector<int64_t> o;
        while (l.next(b)) o.insert(o.end(), b.indices.begin(), b.indices.end());
        return o;
    };
    Loader continuous(c);
    const auto e0 = epoch_order(continuous, 0), e1 = epoch_order(continuous, 1), e2 = epoch_order(continuous, 2);
    Loader fresh1(c), fresh2(c);
    EXPECT_EQ(e1, epoch_order(fresh1, 1));
    EXPECT_EQ(e2, epoch_order(fresh2, 2));
    EXPECT_EQ(e0.size(), 12u);  // ceil(10 / 3) = 4 batches of 3
    // Starting an epoch twice before consuming it keeps the read-ahead and the order.
    Loader twice(c);
    twice.start_epoch(0);
    EXPECT_EQ(epoch_order(twice, 0), e0);
}
