// NormRelu (none / batch / group normalization, each followed by ReLU) against the naive
// reference, in 2D and 3D and in plain, channels-last and blocked layouts (blocked with padded
// channels too): forward, backward (diff_src, gamma and beta gradients, also in place), batch
// norm's running statistics and its eval mode, and float finite differences of the layer.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "../support/naive_ops.h"
#include "unet/core/check.h"
#include "unet/core/param_store.h"
#include "unet/nn/norm.h"

namespace unet {
namespace {

using namespace unet::testing;
using naive::NormGrads;

struct NormCase {
    int nd = 2;
    NormKind kind = NormKind::batch;
    int64_t c = 4, groups = 1;
    Layout layout = Layout::plain;

    Shape shape() const {
        Shape s;
        s.n = 2;
        s.c = c;
        s.nd = nd;
        s.d = nd == 3 ? 2 : 1;
        s.h = 3;
        s.w = nd == 3 ? 2 : 4;
        return s;
    }
    std::string name() const {
        std::ostringstream os;
        os << "d" << nd << "_" << norm_name(kind) << "_c" << c;
        if (kind == NormKind::group) os << "g" << groups;
        os << "_" << layout_str(layout);
        return os.str();
    }
};

void PrintTo(const NormCase& c, std::ostream* os) { *os << c.name(); }

// The naive layer for one case; `pre` receives the pre-ReLU values.
struct NaiveNorm {
    NormCase nc;
    Shape xs;
    Vec forward(const Vec& x, const Vec& gamma, const Vec& beta, Vec* pre = nullptr) const {
        switch (nc.kind) {
            case NormKind::none:
                if (pre) *pre = x;
                return naive::relu_forward(x);
            case NormKind::batch: return naive::batchnorm_relu_forward(xs, x, gamma, beta, pre);
            case NormKind::group: return naive::groupnorm_relu_forward(xs, x, gamma, beta, nc.groups, pre);
        }
        return {};
    }
    Vec pre(const Vec& x, const Vec& gamma, const Vec& beta) const {
        Vec p;
        forward(x, gamma, beta, &p);
        return p;
    }
    NormGrads backward(const Vec& x, const Vec& gamma, const Vec& beta, const Vec& dy) const {
        switch (nc.kind) {
            case NormKind::none: return {naive::relu_backward(x, dy), {}, {}};
            case NormKind::batch: return naive::batchnorm_relu_backward(xs, x, gamma, beta, dy);
            case NormKind::group: return naive::groupnorm_relu_backward(xs, x, gamma, beta, nc.groups, dy);
        }
        return {};
    }
};

// Inputs with a per-channel offset and spread, so that normalization has something to undo.
Vec norm_input(const Shape& xs, uint64_t seed) {
    Vec x = random_vec(xs.size(), seed);
    const Vec off = random_vec(xs.c, seed + 1, -2.0, 2.0), scale = random_vec(xs.c, seed + 2, 0.5, 3.0);
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t c = 0; c < xs.c; ++c)
            for (int64_t s = 0; s < xs.spatial(); ++s) {
                double& v = x[size_t(xs.at(n, c, 0, 0, 0) + s)];
                v = off[size_t(c)] + scale[size_t(c)] * v;
            }
    return x;
}

// --- (a) the naive backward against finite differences ---------------------------------------------

class NaiveNormGradient : public ::testing::TestWithParam<NormCase> {};

TEST_P(NaiveNormGradient, MatchesCentralDifferences) {
    const NormCase nc = GetParam();
    const NaiveNorm nn{nc, nc.shape()};
    const Vec x = nc.kind == NormKind::none ? away_from_zero(random_vec(nn.xs.size(), 71), 1e-3)
                                            : norm_input(nn.xs, 71);
    const Vec gamma = random_vec(nc.c, 72, 0.5, 1.5), beta = random_vec(nc.c, 73, -0.5, 0.5);
    const Vec dy = random_vec(nn.xs.size(), 74);
    const NormGrads g = nn.backward(x, gamma, beta, dy);
    const double h = 1e-5, tol = 1e-6;
    // Every coordinate whose step moves any pre-activation across 0 is skipped.
    EXPECT_TRUE(gradient_ok(check_gradient([&](const Vec& v) { return nn.forward(v, gamma, beta); }, x, dy, g.dx,
                                           h, [&](const Vec& v) { return nn.pre(v, gamma, beta); }),
                            tol, "dx"));
    if (nc.kind == NormKind::none) return;
    EXPECT_TRUE(gradient_ok(check_gradient([&](const Vec& v) { return nn.forward(x, v, beta); }, gamma, dy,
                                           g.dgamma, h, [&](const Vec& v) { return nn.pre(x, v, beta); }),
                            tol, "dgamma"));
    EXPECT_TRUE(gradient_ok(check_gradient([&](const Vec& v) { return nn.forward(x, gamma, v); }, beta, dy,
                                           g.dbeta, h, [&](const Vec& v) { return nn.pre(x, gamma, v); }),
                            tol, "dbeta"));
}

std::vector<NormCase> naive_cases() {
    std::vector<NormCase> v;
    for (int nd : {2, 3}) {
        v.push_back({nd, NormKind::none, 3, 1});
        v.push_back({nd, NormKind::batch, 3, 1});
        v.push_back({nd, NormKind::group, 4, 1});
        v.push_back({nd, NormKind::group, 4, 2});
        v.push_back({nd, NormKind::group, 4, 4});
    }
    return v;
}

INSTANTIATE_TEST_SUITE_P(All, NaiveNormGradient, ::testing::ValuesIn(naive_cases()),
                         [](const auto& info) { return info.param.name(); });

TEST(NaiveNorm, NormalizesWithBiasedVariance) {
    Shape xs;
    xs.n = 2;
    xs.c = 1;
    xs.h = 1;
    xs.w = 2;
    // Channel values {1, 3, 5, 7}: mean 4, biased variance 5.
    Vec pre, mean, var;
    const Vec y = naive::batchnorm_relu_forward(xs, {1, 3, 5, 7}, {2.0}, {0.5}, &pre, &mean, &var);
    EXPECT_DOUBLE_EQ(mean[0], 4.0);
    EXPECT_DOUBLE_EQ(var[0], 5.0);
    const double r = 1 / std::sqrt(5.0 + 1e-5);
    EXPECT_NEAR(pre[0], 2 * -3 * r + 0.5, 1e-12);
    EXPECT_EQ(y[0], 0.0);
    EXPECT_NEAR(y[3], 2 * 3 * r + 0.5, 1e-12);
    // Group norm with one channel per group normalizes each (sample, channel) on its own.
    naive::groupnorm_relu_forward(xs, {1, 3, 5, 7}, {1.0}, {0.0}, 1, nullptr, &mean, &var);
    EXPECT_EQ(mean, (Vec{2, 6}));
    EXPECT_EQ(var, (Vec{1, 1}));
}

// --- (b) and (c): the oneDNN / OpenMP layer ---------------------------------------------------------

class NormReluTest : public ::testing::TestWithParam<NormCase> {};

TEST_P(NormReluTest, MatchesNaiveAndFiniteDifferences) {
    const NormCase nc = GetParam();
    const Shape xs = nc.shape();
    const NaiveNorm nn{nc, xs};
    const bool has_params = nc.kind != NormKind::none;

    ParamStore store;
    NormRelu::register_params(store, "norm", nc.c, nc.kind);
    store.finalize();
    const int gi = store.find("norm.weight"), bi = store.find("norm.bias");
    ASSERT_EQ(gi >= 0, has_params);
    ASSERT_EQ(bi >= 0, has_params);
    const std::vector<float> gf = to_f32(random_vec(nc.c, 81, 0.5, 1.5)), bf = to_f32(random_vec(nc.c, 82, -0.5, 0.5));
    if (has_params) {
        std::copy(gf.begin(), gf.end(), store.param(gi));
        std::copy(bf.begin(), bf.end(), store.param(bi));
    }
    const Vec gamma = to_f64(gf), beta = to_f64(bf);
    // Running statistics start away from PyTorch's (0, 1) so the update formula is visible.
    const int mi = store.find_buffer("norm.running_mean"), vi = store.find_buffer("norm.running_var");
    ASSERT_EQ(mi >= 0 && vi >= 0, nc.kind == NormKind::batch);
    std::vector<float> rm0, rv0;
    if (nc.kind == NormKind::batch) {
        rm0 = to_f32(random_vec(nc.c, 83, -1.0, 1.0));
        rv0 = to_f32(random_vec(nc.c, 84, 0.5, 2.0));
        std::copy(rm0.begin(), rm0.end(), store.buffer(mi));
        std::copy(rv0.begin(), rv0.end(), store.buffer(vi));
    }

    const memory::desc md = f32_desc(xs.dims(), layout_tag(nc.layout, nc.nd + 2));
    NormRelu layer(md, nc.kind, nc.groups, store, "norm");
    EXPECT_EQ(layer.dst_desc(), md) << "dst keeps src's layout";
    const std::vector<float> xf =
        to_f32(nc.kind == NormKind::none ? random_vec(xs.size(), 85) : norm_input(xs, 85));
    const Vec x = to_f64(xf);
    memory src = make_memory(md, x), dst = make_memory(md);
    layer.forward(src, dst, true);
    DnnlContext::get().stream.wait();
    Vec pre, mean, var;
    Vec y_ref;
    if (nc.kind == NormKind::batch)
        y_ref = naive::batchnorm_relu_forward(xs, x, gamma, beta, &pre, &mean, &var);
    else
        y_ref = nn.forward(x, gamma, beta, &pre);
    EXPECT_TRUE(all_close(read_f64(dst), y_ref, 1e-4, 1e-4 * std::max(1.0, max_abs(y_ref)), &xs)) << "forward";

    if (nc.kind == NormKind::batch) {
        // PyTorch's update: momentum 0.1, the unbiased batch variance for running_var.
        const double m = double(xs.n * xs.spatial());
        for (int64_t c = 0; c < nc.c; ++c) {
            const double em = 0.9 * rm0[size_t(c)] + 0.1 * mean[size_t(c)];
            const double ev = 0.9 * rv0[size_t(c)] + 0.1 * var[size_t(c)] * m / (m - 1);
            EXPECT_NEAR(store.buffer(mi)[c], em, 1e-5 * std::max(1.0, std::fabs(em))) << "running_mean " << c;
            EXPECT_NEAR(store.buffer(vi)[c], ev, 1e-5 * std::max(1.0, std::fabs(ev))) << "running_var " << c;
        }
    }

    // Backward; dy is zeroed where the pre-activation is within float noise of the ReLU's kink.
    Vec dy = random_vec(xs.size(), 86);
    for (size_t i = 0; i < dy.size(); ++i)
        if (std::fabs(pre[i]) < 1e-4) dy[i] = 0;
    memory diff_dst = make_memory(md, dy), diff_src = make_memory(md, Vec(size_t(xs.size()), 7.0));
    std::fill(store.grads(), store.grads() + store.size(), 7.f);
    layer.backward(src, dst, diff_dst, diff_src);
    DnnlContext::get().stream.wait();
    const NormGrads ref = nn.backward(x, gamma, beta, dy);
    const Vec dx = read_f64(diff_src);
    EXPECT_TRUE(all_close(dx, ref.dx, 1e-4, 1e-4 * std::max(1.0, max_abs(ref.dx)), &xs)) << "diff_src";
    Vec dgamma, dbeta;
    if (has_params) {
        dgamma = to_f64(store.grad(gi), nc.c);
        dbeta = to_f64(store.grad(bi), nc.c);
        EXPECT_TRUE(all_close(dgamma, ref.dgamma, 1e-4, 1e-4 * std::max(1.0, max_abs(ref.dgamma)))) << "dgamma";
        EXPECT_TRUE(all_close(dbeta, ref.dbeta, 1e-4, 1e-4 * std::max(1.0, max_abs(ref.dbeta)))) << "dbeta";
    }
    // diff_dst is not modified by an out-of-place backward.
    EXPECT_TRUE(all_close(read_f64(diff_dst), to_f64(to_f32(dy)), 0, 0, &xs)) << "diff_dst changed";

    // In place (diff_src == diff_dst) gives the same result.
    memory in_place = make_memory(md, dy);
    layer.backward(src, dst, in_place, in_place);
    DnnlContext::get().stream.wait();
    EXPECT_TRUE(all_close(read_f64(in_place), dx, 1e-6, 1e-6, &xs)) << "in-place diff_src";

    // (c) Float finite differences of the layer (training forward), skipping ReLU switches.
    std::vector<float> xin = xf;
    auto run = [&]() {
        write_plain(xin.data(), src);
        layer.forward(src, dst, true);
        DnnlContext::get().stream.wait();
        return to_plain(dst);
    };
    const float h = 2e-3f;
    const std::vector<float> y0 = run();
    FloatFdCheck fd;
    for (int64_t i : pick_indices(xs.size(), 6, 87))
        fd.add("x" + xs.coord(i), float_difference(run, xin[size_t(i)], dy, h, &y0), dx[size_t(i)]);
    if (has_params)
        for (int64_t i : pick_indices(nc.c, 3, 88)) {
            fd.add("gamma[" + std::to_string(i) + "]", float_difference(run, store.param(gi)[i], dy, h, &y0),
                   dgamma[size_t(i)]);
            fd.add("beta[" + std::to_string(i) + "]", float_difference(run, store.param(bi)[i], dy, h, &y0),
                   dbeta[size_t(i)]);
        }
    EXPECT_TRUE(fd.result());
}

std::vector<NormCase> layer_cases() {
    std::vector<NormCase> v;
    for (int nd : {2, 3})
        for (Layout l : {Layout::plain, Layout::channels_last, Layout::blocked16}) {
            v.push_back({nd, NormKind::none, 4, 1, l});
            v.push_back({nd, NormKind::none, 16, 1, l});
            for (int64_t c : {4, 16, 24}) v.push_back({nd, NormKind::batch, c, 1, l});
            for (auto cg : {std::pair<int64_t, int64_t>{4, 2}, {8, 8}, {16, 1}, {16, 4}, {24, 3}})
                v.push_back({nd, NormKind::group, cg.first, cg.second, l});
        }
    return v;
}

INSTANTIATE_TEST_SUITE_P(All, NormReluTest, ::testing::ValuesIn(layer_cases()),
                         [](const auto& info) { return info.param.name(); });

// Eval mode normalizes with the running statistics (including the ones the training forward
// just updated) and leaves them alone.
class BatchNormEval : public ::testing::TestWithParam<std::pair<int, Layout>> {};

TEST_P(BatchNormEval, UsesRunningStatistics) {
    const NormCase nc{GetParam().first, NormKind::batch, 16, 1, GetParam().second};
    const Shape xs = nc.shape();
    ParamStore store;
    NormRelu::register_params(store, "bn", nc.c, NormKind::batch);
    store.finalize();
    const int gi = store.find("bn.weight"), bi = store.find("bn.bias");
    const int mi = store.find_buffer("bn.running_mean"), vi = store.find_buffer("bn.running_var");
    const std::vector<float> gf = to_f32(random_vec(nc.c, 91, 0.5, 1.5)), bf = to_f32(random_vec(nc.c, 92, -0.5, 0.5));
    std::copy(gf.begin(), gf.end(), store.param(gi));
    std::copy(bf.begin(), bf.end(), store.param(bi));
    std::fill_n(store.buffer(vi), nc.c, 1.f);  // PyTorch's initial running_var

    const memory::desc md = f32_desc(xs.dims(), layout_tag(nc.layout, nc.nd + 2));
    NormRelu layer(md, NormKind::batch, 1, store, "bn");
    memory src = make_memory(md, to_f64(to_f32(norm_input(xs, 93)))), dst = make_memory(md);
    layer.forward(src, dst, true);  // moves the running statistics
    layer.forward(src, dst, true);
    DnnlContext::get().stream.wait();
    const Vec rm = to_f64(store.buffer(mi), nc.c), rv = to_f64(store.buffer(vi), nc.c);

    const Vec x = to_f64(to_f32(norm_input(xs, 94)));
    write_f64(x, src);
    layer.forward(src, dst, false);
    DnnlContext::get().stream.wait();
    const Vec y_ref = naive::batchnorm_relu_inference(xs, x, to_f64(gf), to_f64(bf), rm, rv);
    EXPECT_TRUE(all_close(read_f64(dst), y_ref, 1e-4, 1e-4 * std::max(1.0, max_abs(y_ref)), &xs));
    EXPECT_EQ(to_f64(store.buffer(mi), nc.c), rm) << "eval changed running_mean";
    EXPECT_EQ(to_f64(store.buffer(vi), nc.c), rv) << "eval changed running_var";
    // And it differs from the training-mode result on the same input (batch statistics).
    const Vec y_train = naive::batchnorm_relu_forward(xs, x, to_f64(gf), to_f64(bf));
    EXPECT_FALSE(all_close(y_ref, y_train, 1e-3, 1e-3));
}

INSTANTIATE_TEST_SUITE_P(All, BatchNormEval,
                         ::testing::Values(std::make_pair(2, Layout::plain), std::make_pair(2, Layout::blocked16),
                                           std::make_pair(3, Layout::channels_last),
                                           std::make_pair(3, Layout::blocked16)),
                         [](const auto& info) {
                             return "d" + std::to_string(info.param.first) + "_" + layout_str(info.param.second);
                         });

TEST(NormRelu, ParsesNames) {
    for (NormKind k : {NormKind::none, NormKind::batch, NormKind::group}) EXPECT_EQ(parse_norm(norm_name(k)), k);
    EXPECT_THROW(parse_norm("layer"), UsageError);
}

TEST(NormRelu, GroupsMustDivideChannels) {
    ParamStore store;
    NormRelu::register_params(store, "gn", 6, NormKind::group);
    store.finalize();
    EXPECT_THROW(NormRelu(f32_desc({1, 6, 2, 2}, Tag::nchw), NormKind::group, 4, store, "gn"), std::logic_error);
}

}  // namespace
}  // namespace unet
