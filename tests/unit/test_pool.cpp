// MaxPool (kernel 2, stride 2, argmax kept in a workspace) against the naive reference, in 2D and
// 3D and in plain, channels-last and blocked layouts. Inputs have distinct values spaced far
// more widely than any finite-difference step, so no perturbation can move an argmax.
#include <gtest/gtest.h>

#include <sstream>

#include "../support/naive_ops.h"
#include "unet/nn/pool.h"

namespace unet {
namespace {

using namespace unet::testing;

struct PoolCase {
    int nd = 2;
    int64_t c = 3;
    Layout layout = Layout::plain;

    Shape src_shape() const {
        Shape s;
        s.n = 2;
        s.c = c;
        s.nd = nd;
        s.d = nd == 3 ? 4 : 1;
        s.h = nd == 3 ? 2 : 4;
        s.w = 6;
        return s;
    }
    std::string name() const {
        std::ostringstream os;
        os << "d" << nd << "_c" << c << "_" << layout_str(layout);
        return os.str();
    }
};

void PrintTo(const PoolCase& c, std::ostream* os) { *os << c.name(); }

std::vector<PoolCase> cases() {
    std::vector<PoolCase> v;
    for (int nd : {2, 3})
        for (int64_t c : {3, 16})
            for (Layout l : {Layout::plain, Layout::channels_last, Layout::blocked16}) v.push_back({nd, c, l});
    return v;
}

class NaivePoolGradient : public ::testing::TestWithParam<int> {};

TEST_P(NaivePoolGradient, MatchesCentralDifferences) {
    const PoolCase pc{GetParam(), 3, Layout::plain};
    const Shape xs = pc.src_shape();
    const Vec x = distinct_vec(xs.size(), 41, 1e-2);
    const Vec dy = random_vec(xs.halved().size(), 42);
    const Vec dx = naive::maxpool_backward(xs, x, dy);
    EXPECT_TRUE(gradient_ok(
        check_gradient([&](const Vec& v) { return naive::maxpool_forward(xs, v); }, x, dy, dx, 1e-5), 1e-6, "dx"));
}

INSTANTIATE_TEST_SUITE_P(All, NaivePoolGradient, ::testing::Values(2, 3),
                         [](const auto& info) { return "d" + std::to_string(info.param); });

TEST(NaivePool, FirstMaximumWinsTies) {
    Shape xs;
    xs.h = 2;
    xs.w = 4;
    // Window 0 holds {1, 5, 2, 5}: two maxima, the first in scan order (row 0, col 1) wins.
    // Window 1 is all equal: element (0, 2) wins.
    const Vec x = {1, 5, 3, 3, 2, 5, 3, 3};
    EXPECT_EQ(naive::maxpool_forward(xs, x), (Vec{5, 3}));
    EXPECT_EQ(naive::maxpool_backward(xs, x, {1.5, 2.5}), (Vec{0, 1.5, 2.5, 0, 0, 0, 0, 0}));
}

TEST(NaivePool, DepthWindowIn3D) {
    Shape xs;
    xs.nd = 3;
    xs.d = 2;
    xs.h = 2;
    xs.w = 2;
    Vec x = {0, 1, 2, 3, 4, 9, 6, 7};  // the maximum sits in the second depth slice
    EXPECT_EQ(naive::maxpool_forward(xs, x), (Vec{9}));
    EXPECT_EQ(naive::maxpool_backward(xs, x, {2.0}), (Vec{0, 0, 0, 0, 0, 2, 0, 0}));
}

class MaxPoolTest : public ::testing::TestWithParam<PoolCase> {};

TEST_P(MaxPoolTest, MatchesNaiveAndFiniteDifferences) {
    const PoolCase pc = GetParam();
    const Shape xs = pc.src_shape(), ys = xs.halved();
    const memory::desc src_md = f32_desc(xs.dims(), layout_tag(pc.layout, pc.nd + 2));
    MaxPool pool(src_md);
    ASSERT_EQ(pool.dst_desc().dims(), ys.dims());
    // dst keeps src's layout.
    EXPECT_EQ(layout_name(pool.dst_desc()), layout_name(src_md));

    // Spacing 0.05 is exact enough in float and far above the float step below.
    const std::vector<float> xf = to_f32(distinct_vec(xs.size(), 43, 0.05));
    const Vec x = to_f64(xf);
    memory src = make_memory(src_md, x), dst = make_memory(pool.dst_desc());
    pool.forward(src, dst);
    DnnlContext::get().stream.wait();
    EXPECT_TRUE(all_close(read_f64(dst), naive::maxpool_forward(xs, x), 0, 0, &ys)) << "forward";

    const Vec dy = random_vec(ys.size(), 44);
    memory diff_dst = make_memory(pool.dst_desc(), dy);
    // Garbage in diff_src: backward overwrites it.
    memory diff_src = make_memory(src_md, Vec(size_t(xs.size()), 7.0));
    pool.backward(diff_dst, diff_src);
    DnnlContext::get().stream.wait();
    const Vec dx = read_f64(diff_src);
    EXPECT_TRUE(all_close(dx, naive::maxpool_backward(xs, x, dy), 1e-6, 1e-6, &xs)) << "diff_src";

    std::vector<float> xin = xf;
    auto run = [&]() {
        write_plain(xin.data(), src);
        pool.forward(src, dst);
        DnnlContext::get().stream.wait();
        return to_plain(dst);
    };
    FloatFdCheck fd;
    for (int64_t i : pick_indices(xs.size(), 8, 45))
        fd.add("x" + xs.coord(i), float_difference(run, xin[size_t(i)], dy, 1e-2f, nullptr), dx[size_t(i)]);
    EXPECT_TRUE(fd.result());
}

// With equal values in a window the gradient must go to exactly one element, never be split,
// and forward and backward must agree on which (the workspace); here: the first in scan order.
TEST_P(MaxPoolTest, TiesRouteToOneElement) {
    const PoolCase pc = GetParam();
    const Shape xs = pc.src_shape(), ys = xs.halved();
    const memory::desc src_md = f32_desc(xs.dims(), layout_tag(pc.layout, pc.nd + 2));
    MaxPool pool(src_md);
    // Values repeat in pairs along w, so every window holds ties.
    Vec x(size_t(xs.size()));
    for (int64_t i = 0; i < xs.size(); ++i) x[size_t(i)] = double((i / 2) % 5);
    memory src = make_memory(src_md, x), dst = make_memory(pool.dst_desc());
    pool.forward(src, dst);
    const Vec dy = random_vec(ys.size(), 46, 1.0, 2.0);  // nonzero, so every routed entry shows
    memory diff_dst = make_memory(pool.dst_desc(), dy);
    memory diff_src = make_memory(src_md);
    pool.backward(diff_dst, diff_src);
    const Vec dx = read_f64(diff_src);
    EXPECT_TRUE(all_close(read_f64(dst), naive::maxpool_forward(xs, x), 0, 0, &ys));
    int64_t nonzero = 0;
    for (double v : dx) nonzero += v != 0;
    EXPECT_EQ(nonzero, ys.size()) << "one element per window receives the gradient";
    EXPECT_TRUE(all_close(dx, naive::maxpool_backward(xs, x, dy), 1e-6, 1e-6, &xs));
}

INSTANTIATE_TEST_SUITE_P(All, MaxPoolTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

TEST(MaxPool, RejectsOddSizes) {
    EXPECT_THROW(MaxPool(f32_desc({1, 2, 5, 4}, Tag::nchw)), std::logic_error);
    EXPECT_THROW(MaxPool(f32_desc({1, 2, 3, 4, 4}, Tag::ncdhw)), std::logic_error);
}

}  // namespace
}  // namespace unet
