// Sliding-window inference: the window grid, the importance map, and the identities that hold
// whatever the network (whole-volume window == one forward; flipping a mirrored prediction's input
// flips the output; padding of axes shorter than the window). The comparison with MONAI itself is
// tests/reference/sliding_window_crosscheck.sh.
#include <gtest/gtest.h>

#include <random>

#include "unet/core/check.h"
#include "unet/infer/sliding_window.h"

namespace unet {
namespace {

TEST(SlidingWindow, StartsFollowMonaiRule) {
    EXPECT_EQ(window_starts(64, 64, 0.5), (std::vector<int64_t>{0}));
    EXPECT_EQ(window_starts(100, 64, 0.5), (std::vector<int64_t>{0, 32, 36}));  // last window moved back
    EXPECT_EQ(window_starts(128, 64, 0.5), (std::vector<int64_t>{0, 32, 64}));
    EXPECT_EQ(window_starts(240, 64, 0.5), (std::vector<int64_t>{0, 32, 64, 96, 128, 160, 176}));
    EXPECT_EQ(window_starts(152, 64, 0.25), (std::vector<int64_t>{0, 48, 88}));  // step int(64 * 0.75) = 48
    EXPECT_EQ(window_starts(10, 4, 0.0), (std::vector<int64_t>{0, 4, 6}));
    EXPECT_EQ(window_starts(5, 4, 0.9), (std::vector<int64_t>{0, 1}));          // step at least 1
}

TEST(SlidingWindow, CountIncludesPaddedAxes) {
    WindowOptions o;
    o.roi = {64, 64, 64};
    EXPECT_EQ(window_count({152, 240, 240}, o), 4 * 7 * 7);
    EXPECT_EQ(window_count({20, 64, 100}, o), 1 * 1 * 3);  // depth 20 padded to one window
}

TEST(SlidingWindow, GaussianMapIsSymmetricPeakedAndClamped) {
    const std::vector<float> m = importance_map({8, 16}, Blend::gaussian);
    ASSERT_EQ(m.size(), 128u);
    for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 16; ++x) {
            EXPECT_FLOAT_EQ(m[size_t(y * 16 + x)], m[size_t((7 - y) * 16 + 15 - x)]);
            EXPECT_GE(m[size_t(y * 16 + x)], 1e-3f);
        }
    EXPECT_GT(m[size_t(3 * 16 + 7)], m[0]);
    // sigma = roi / 8: one pixel off centre along W (x = 0.5 from the centre 7.5) weighs exp(-0.5^2 / 2 / 2^2)
    EXPECT_NEAR(m[size_t(3 * 16 + 7)], std::exp(-0.25f / 8.f) * std::exp(-0.25f / (2.f * 1.f)), 1e-6);
    for (float v : importance_map({4, 4, 4}, Blend::constant)) EXPECT_EQ(v, 1.f);
}

TEST(SlidingWindow, ValidateNamesTheFlag) {
    UNetConfig c;
    c.dims = 3, c.depth = 2;
    WindowOptions o;
    o.roi = {16, 16, 18};
    EXPECT_THROW(o.validate(c), UsageError);
    o.roi = {16, 16};
    EXPECT_THROW(o.validate(c), UsageError);
    o.roi = {16, 16, 16};
    o.overlap = 1.0;
    EXPECT_THROW(o.validate(c), UsageError);
    o.overlap = 0.5, o.batch = 0;
    EXPECT_THROW(o.validate(c), UsageError);
    o.batch = 2;
    EXPECT_NO_THROW(o.validate(c));
    EXPECT_THROW(parse_blend("box"), UsageError);
}

struct SmallNet {
    UNet net;
    SmallNet(int dims) : net(config(dims)) {}
    static UNetConfig config(int dims) {
        UNetConfig c;
        c.dims = dims, c.in_channels = 2, c.base_filters = 4, c.depth = 2, c.seed = 3;
        return c;
    }
};

std::vector<float> random_input(int64_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(g);
    return v;
}

TEST(SlidingWindow, WholeVolumeWindowIsOneForward) {
    SmallNet s(3);
    const Dims sp{8, 12, 16};
    const std::vector<float> x = random_input(2 * 8 * 12 * 16, 1);
    const float* y = s.net.forward(x.data(), 1, sp, false);
    const std::vector<float> plain(y, y + product(sp));
    WindowOptions o;
    o.roi = sp;
    const std::vector<float> w = sliding_window_predict(s.net, x.data(), sp, o);
    for (size_t i = 0; i < plain.size(); ++i) ASSERT_NEAR(w[i], plain[i], 1e-6) << i;
    // Given its input's memory, the prediction frees it before the network runs (the inference
    // plan keeps its own channels-last copy) and the result is the same.
    std::vector<float> owned = x;
    const std::vector<float> w2 = sliding_window_predict(s.net, std::move(owned), sp, o);
    EXPECT_EQ(owned.capacity(), 0u);
    EXPECT_EQ(w2, w);
}

TEST(SlidingWindow, MirroredPredictionOfAFlippedImageIsTheFlippedPrediction) {
    SmallNet s(2);
    const int64_t H = 12, W = 20;
    const std::vector<float> x = random_input(2 * H * W, 2);
    std::vector<float> xf(x.size());
    for (int64_t c = 0; c < 2; ++c)
        for (int64_t y = 0; y < H; ++y)
            for (int64_t i = 0; i < W; ++i) xf[size_t((c * H + y) * W + i)] = x[size_t((c * H + y) * W + W - 1 - i)];
    WindowOptions o;
    o.roi = {H, W};  // one window: the flip maps the window grid onto itself
    o.mirror = true;
    const std::vector<float> a = sliding_window_predict(s.net, x.data(), {H, W}, o);
    const std::vector<float> b = sliding_window_predict(s.net, xf.data(), {H, W}, o);
    for (int64_t y = 0; y < H; ++y)
        for (int64_t i = 0; i < W; ++i) ASSERT_NEAR(a[size_t(y * W + i)], b[size_t(y * W + W - 1 - i)], 2e-6);
}

TEST(SlidingWindow, BatchSizeAndImageBatchingDoNotChangeTheResult) {
    SmallNet s(2);
    const Dims sp{20, 28};
    const std::vector<float> x1 = random_input(2 * 20 * 28, 3), x2 = random_input(2 * 20 * 28, 4);
    WindowOptions o;
    o.roi = {8, 8};
    const std::vector<float> a = sliding_window_predict(s.net, x1.data(), sp, o);
    o.batch = 5;
    const auto both = sliding_window_predict(s.net, std::vector<const float*>{x1.data(), x2.data()}, sp, o);
    const std::vector<float> b2 = sliding_window_predict(s.net, x2.data(), sp, o);
    for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_NEAR(both[0][i], a[i], 1e-5) << i;
        ASSERT_NEAR(both[1][i], b2[i], 1e-5) << i;
    }
}

}  // namespace
}  // namespace unet
