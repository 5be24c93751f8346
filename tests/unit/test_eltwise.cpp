// Eltwise (standalone ReLU and sigmoid, backward from dst) against the naive reference, in 2D
// and 3D and in plain, channels-last and blocked layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "../support/naive_ops.h"
#include "unet/nn/eltwise.h"

namespace unet {
namespace {

using namespace unet::testing;

struct EltwiseCase {
    int nd = 2;
    Activation kind = Activation::relu;
    int64_t c = 3;
    Layout layout = Layout::plain;

    Shape shape() const {
        Shape s;
        s.n = 2;
        s.c = c;
        s.nd = nd;
        s.d = nd == 3 ? 2 : 1;
        s.h = 3;
        s.w = nd == 3 ? 3 : 5;
        return s;
    }
    std::string name() const {
        std::ostringstream os;
        os << "d" << nd << (kind == Activation::relu ? "_relu" : "_sigmoid") << "_c" << c << "_" << layout_str(layout);
        return os.str();
    }
    Vec forward(const Vec& x) const {
        return kind == Activation::relu ? naive::relu_forward(x) : naive::sigmoid_forward(x);
    }
    Vec backward(const Vec& x, const Vec& dy) const {
        return kind == Activation::relu ? naive::relu_backward(x, dy) : naive::sigmoid_backward(x, dy);
    }
};

void PrintTo(const EltwiseCase& c, std::ostream* os) { *os << c.name(); }

// ReLU inputs stay 0.05 away from the kink, far beyond any step used below; sigmoid gets a wider
// range to reach its flat tails.
Vec eltwise_input(const EltwiseCase& ec, uint64_t seed) {
    if (ec.kind == Activation::relu) return away_from_zero(random_vec(ec.shape().size(), seed), 0.05);
    return random_vec(ec.shape().size(), seed, -6.0, 6.0);
}

class NaiveEltwiseGradient : public ::testing::TestWithParam<EltwiseCase> {};

TEST_P(NaiveEltwiseGradient, MatchesCentralDifferences) {
    const EltwiseCase ec = GetParam();
    const Vec x = eltwise_input(ec, 101);
    const Vec dy = random_vec(ec.shape().size(), 102);
    const Vec dx = ec.backward(x, dy);
    // ReLU's kink is at x itself.
    const VecFn kinks = ec.kind == Activation::relu ? VecFn([](const Vec& v) { return v; }) : VecFn();
    EXPECT_TRUE(gradient_ok(check_gradient([&](const Vec& v) { return ec.forward(v); }, x, dy, dx, 1e-5, kinks),
                            1e-6, "dx"));
}

INSTANTIATE_TEST_SUITE_P(All, NaiveEltwiseGradient,
                         ::testing::Values(EltwiseCase{2, Activation::relu}, EltwiseCase{2, Activation::sigmoid},
                                           EltwiseCase{3, Activation::relu}, EltwiseCase{3, Activation::sigmoid}),
                         [](const auto& info) { return info.param.name(); });

TEST(NaiveEltwise, KnownValues) {
    EXPECT_EQ(naive::relu_forward({-2, 0, 3}), (Vec{0, 0, 3}));
    EXPECT_EQ(naive::relu_backward({-2, 0, 3}, {5, 5, 5}), (Vec{0, 0, 5}));
    const Vec s = naive::sigmoid_forward({0, std::log(3.0)});
    EXPECT_DOUBLE_EQ(s[0], 0.5);
    EXPECT_NEAR(s[1], 0.75, 1e-15);
    EXPECT_NEAR(naive::sigmoid_backward({0}, {2})[0], 0.5, 1e-15);
}

class EltwiseTest : public ::testing::TestWithParam<EltwiseCase> {};

TEST_P(EltwiseTest, MatchesNaiveAndFiniteDifferences) {
    const EltwiseCase ec = GetParam();
    const Shape xs = ec.shape();
    const memory::desc md = f32_desc(xs.dims(), layout_tag(ec.layout, ec.nd + 2));
    Eltwise layer(md, ec.kind);
    EXPECT_EQ(layer.dst_desc(), md);

    const std::vector<float> xf = to_f32(eltwise_input(ec, 103));
    const Vec x = to_f64(xf);
    memory src = make_memory(md, x), dst = make_memory(md);
    layer.forward(src, dst);
    DnnlContext::get().stream.wait();
    EXPECT_TRUE(all_close(read_f64(dst), ec.forward(x), 1e-6, 1e-6, &xs)) << "forward";

    const Vec dy = random_vec(xs.size(), 104);
    memory diff_dst = make_memory(md, dy), diff_src = make_memory(md, Vec(size_t(xs.size()), 7.0));
    layer.backward(dst, diff_dst, diff_src);
    DnnlContext::get().stream.wait();
    const Vec dx = read_f64(diff_src);
    EXPECT_TRUE(all_close(dx, ec.backward(x, dy), 1e-5, 1e-6, &xs)) << "diff_src";

    std::vector<float> xin = xf;
    auto run = [&]() {
        write_plain(xin.data(), src);
        layer.forward(src, dst);
        DnnlContext::get().stream.wait();
        return to_plain(dst);
    };
    const std::vector<float> y0 = run();
    FloatFdCheck fd;
    for (int64_t i : pick_indices(xs.size(), 8, 105))
        fd.add("x" + xs.coord(i), float_difference(run, xin[size_t(i)], dy, 1e-2f, ec.kind == Activation::relu ? &y0 : nullptr),
               dx[size_t(i)]);
    EXPECT_TRUE(fd.result());
}

std::vector<EltwiseCase> cases() {
    std::vector<EltwiseCase> v;
    for (int nd : {2, 3})
        for (Activation a : {Activation::relu, Activation::sigmoid})
            for (int64_t c : {3, 16})
                for (Layout l : {Layout::plain, Layout::channels_last, Layout::blocked16}) v.push_back({nd, a, c, l});
    return v;
}

INSTANTIATE_TEST_SUITE_P(All, EltwiseTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
}  // namespace unet
