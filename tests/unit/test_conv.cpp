// ConvLayer (convolution and kernel-2 stride-2 transposed convolution, optional fused ReLU or
// sigmoid) against the naive double-precision reference, in 2D and 3D:
//   - the naive backward against central differences of the naive forward;
//   - the oneDNN forward and backward (diff_src, weight and bias gradients) against the naive ones,
//     with channel counts below 16 (channels-last) and from 16 up (blocked layouts);
//   - central differences of the oneDNN layer itself in float, on a few coordinates.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "../support/naive_ops.h"
#include "unet/core/param_store.h"
#include "unet/nn/conv.h"

namespace unet {
namespace {

using namespace unet::testing;
using naive::ConvGrads;

const char* post_str(PostOp p) {
    switch (p) {
        case PostOp::none: return "none";
        case PostOp::relu: return "relu";
        case PostOp::sigmoid: return "sigmoid";
    }
    return "?";
}

struct ConvCase {
    int nd = 2;
    int64_t in_c = 3, out_c = 5, kernel = 3;
    bool transposed = false;
    PostOp post = PostOp::none;
    bool need_diff_src = true;
    Layout src_layout = Layout::plain;

    // Non-square, small spatial sizes so that a swapped axis or a wrong padding shows up.
    Shape src_shape() const {
        Shape s;
        s.n = 2;
        s.c = in_c;
        s.nd = nd;
        if (transposed) {
            s.d = nd == 3 ? 2 : 1;
            s.h = 3;
            s.w = 2;
        } else {
            s.d = nd == 3 ? 3 : 1;
            s.h = nd == 3 ? 4 : 5;
            s.w = nd == 3 ? 3 : 6;
        }
        return s;
    }
    Shape dst_shape() const {
        const Shape s = src_shape().with_channels(out_c);
        return transposed ? s.scaled() : s;
    }
    int64_t weight_count() const {
        const int64_t taps = int64_t(std::pow(double(kernel), double(nd)));
        return in_c * out_c * taps;
    }
    std::string name() const {
        std::ostringstream os;
        os << "d" << nd << (transposed ? "_deconv" : "_conv") << kernel << "_c" << in_c << "x" << out_c << "_"
           << post_str(post) << "_" << layout_str(src_layout) << (need_diff_src ? "" : "_nodiffsrc");
        return os.str();
    }
};

void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name(); }

// The naive layer: convolution or transposed convolution, then the post-op.
struct NaiveConv {
    ConvCase cc;
    Shape xs;
    Vec forward_pre(const Vec& x, const Vec& w, const Vec& b) const {
        return cc.transposed ? naive::deconv_forward(xs, x, w, b, cc.out_c)
                             : naive::conv_forward(xs, x, w, b, cc.out_c, cc.kernel);
    }
    Vec activate(const Vec& pre) const {
        switch (cc.post) {
            case PostOp::none: return pre;
            case PostOp::relu: return naive::relu_forward(pre);
            case PostOp::sigmoid: return naive::sigmoid_forward(pre);
        }
        return pre;
    }
    Vec forward(const Vec& x, const Vec& w, const Vec& b) const { return activate(forward_pre(x, w, b)); }
    ConvGrads backward(const Vec& x, const Vec& w, const Vec& b, const Vec& dy) const {
        const Vec pre = forward_pre(x, w, b);
        Vec g = dy;
        if (cc.post == PostOp::relu) g = naive::relu_backward(pre, dy);
        if (cc.post == PostOp::sigmoid) g = naive::sigmoid_backward(pre, dy);
        return cc.transposed ? naive::deconv_backward(xs, x, w, cc.out_c, g)
                             : naive::conv_backward(xs, x, w, cc.out_c, cc.kernel, g);
    }
};

// Weights scaled like a fan-in initialisation so that pre-activations stay O(1): sigmoid is not
// saturated and ReLU keeps about half its outputs.
Vec random_weights(const ConvCase& cc, uint64_t seed) {
    const double fan_in = double(cc.weight_count() / cc.out_c);
    const double a = std::sqrt(3.0 / fan_in);
    return random_vec(cc.weight_count(), seed, -a, a);
}

// --- (a) the naive backward against finite differences of the naive forward ------------------------

class NaiveConvGradient : public ::testing::TestWithParam<ConvCase> {};

TEST_P(NaiveConvGradient, MatchesCentralDifferences) {
    const ConvCase cc = GetParam();
    const NaiveConv nc{cc, cc.src_shape()};
    const Vec x = random_vec(nc.xs.size(), 11);
    const Vec w = random_weights(cc, 12);
    const Vec b = random_vec(cc.out_c, 13, -0.5, 0.5);
    const Vec dy = random_vec(cc.dst_shape().size(), 14);
    const ConvGrads g = nc.backward(x, w, b, dy);
    // ReLU: a coordinate whose step moves any pre-activation across 0 is skipped.
    const bool kinked = cc.post == PostOp::relu;
    const double h = 1e-5, tol = 1e-6;
    EXPECT_TRUE(gradient_ok(
        check_gradient([&](const Vec& v) { return nc.forward(v, w, b); }, x, dy, g.dx, h,
                       kinked ? VecFn([&](const Vec& v) { return nc.forward_pre(v, w, b); }) : VecFn()),
        tol, "dx"));
    EXPECT_TRUE(gradient_ok(
        check_gradient([&](const Vec& v) { return nc.forward(x, v, b); }, w, dy, g.dweight, h,
                       kinked ? VecFn([&](const Vec& v) { return nc.forward_pre(x, v, b); }) : VecFn()),
        tol, "dweight"));
    EXPECT_TRUE(gradient_ok(
        check_gradient([&](const Vec& v) { return nc.forward(x, w, v); }, b, dy, g.dbias, h,
                       kinked ? VecFn([&](const Vec& v) { return nc.forward_pre(x, w, v); }) : VecFn()),
        tol, "dbias"));
}

std::vector<ConvCase> naive_cases() {
    std::vector<ConvCase> v;
    for (int nd : {2, 3})
        for (int kind = 0; kind < 3; ++kind)
            for (PostOp post : {PostOp::none, PostOp::relu, PostOp::sigmoid}) {
                ConvCase c;
                c.nd = nd;
                c.in_c = 2;
                c.out_c = 3;
                c.kernel = kind == 0 ? 1 : kind == 1 ? 3 : 2;
                c.transposed = kind == 2;
                c.post = post;
                v.push_back(c);
            }
    return v;
}

INSTANTIATE_TEST_SUITE_P(All, NaiveConvGradient, ::testing::ValuesIn(naive_cases()),
                         [](const auto& info) { return info.param.name(); });

// Hand-computed values pin down what finite differences cannot: the forward itself. PyTorch's
// Conv is a cross-correlation (no kernel flip), and ConvTranspose weights are (I, O, k, k).
TEST(NaiveConv, CrossCorrelationWithoutFlip) {
    Shape xs;
    xs.c = 1;
    xs.h = 3;
    xs.w = 3;
    Vec x(9, 0.0);
    x[4] = 1.0;  // a delta in the centre
    Vec w(9);
    for (int i = 0; i < 9; ++i) w[size_t(i)] = i + 1;
    const Vec y = naive::conv_forward(xs, x, w, {0.5}, 1, 3);
    // y(r, c) = w(2 - r, 2 - c) + bias: the kernel appears flipped around the delta.
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) EXPECT_DOUBLE_EQ(y[size_t(r * 3 + c)], w[size_t((2 - r) * 3 + (2 - c))] + 0.5);
}

TEST(NaiveConv, TransposedWeightOrderAndPlacement) {
    Shape xs;
    xs.c = 1;
    xs.h = 1;
    xs.w = 2;
    const Vec x = {1.0, 10.0};
    // PyTorch ConvTranspose weight (I=1, O=2, 2, 2): output channel o uses w[0][o].
    const Vec w = {1, 2, 3, 4, 5, 6, 7, 8};
    const Vec y = naive::deconv_forward(xs, x, w, {0.0, 100.0}, 2);
    // Output 2 x 2 x 4: input pixel j fills columns 2j, 2j + 1 with x_j * kernel.
    const Vec expect = {1, 2, 10, 20, 3, 4, 30, 40, 105, 106, 150, 160, 107, 108, 170, 180};
    EXPECT_TRUE(all_close(y, expect, 0, 1e-12));
}

// --- (b) and (c): the oneDNN layer -------------------------------------------------------------------

struct LayerRun {
    ParamStore store;
    int wi = -1, bi = -1;
    Vec x, w, b;
};

class ConvLayerTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvLayerTest, MatchesNaiveAndFiniteDifferences) {
    const ConvCase cc = GetParam();
    const Shape xs = cc.src_shape(), ys = cc.dst_shape();
    const NaiveConv nc{cc, xs};
    const ConvSpec spec{cc.out_c, cc.kernel, cc.post, cc.transposed};

    ParamStore store;
    ConvLayer::register_params(store, "conv", cc.in_c, spec, cc.nd);
    store.finalize();
    const int wi = store.find("conv.weight"), bi = store.find("conv.bias");
    ASSERT_GE(wi, 0);
    ASSERT_GE(bi, 0);
    ASSERT_EQ(store.view(wi).count, cc.weight_count());
    const Vec w = random_weights(cc, 21), b = random_vec(cc.out_c, 22, -0.5, 0.5);
    const Vec x = random_vec(xs.size(), 23);
    // Parameters are stored as float; the reference must use exactly the same values.
    const std::vector<float> wf = to_f32(w), bf = to_f32(b), xf = to_f32(x);
    std::copy(wf.begin(), wf.end(), store.param(wi));
    std::copy(bf.begin(), bf.end(), store.param(bi));

    const memory::desc src_md = f32_desc(xs.dims(), layout_tag(cc.src_layout, cc.nd + 2));
    ConvLayer layer(src_md, spec, store, "conv", cc.need_diff_src);
    ASSERT_EQ(layer.dst_desc().dims(), ys.dims());
    memory src = make_memory(src_md, to_f64(xf));
    memory dst = make_memory(layer.dst_desc());
    layer.forward(src, dst);
    DnnlContext::get().stream.wait();

    const Vec xd = to_f64(xf), wd = to_f64(wf), bd = to_f64(bf);
    const Vec pre = nc.forward_pre(xd, wd, bd);
    const Vec y_ref = nc.activate(pre);
    const Vec y = read_f64(dst);
    EXPECT_TRUE(all_close(y, y_ref, 1e-4, 1e-4 * std::max(1.0, max_abs(y_ref)), &ys)) << "forward";

    // Backward. dy is zeroed where a ReLU pre-activation is within float noise of 0, where
    // oneDNN's dst > 0 and the reference's pre > 0 may legitimately disagree.
    Vec dy = random_vec(ys.size(), 24);
    if (cc.post == PostOp::relu)
        for (size_t i = 0; i < dy.size(); ++i)
            if (std::fabs(pre[i]) < 1e-5) dy[i] = 0;
    memory diff_dst = make_memory(layer.dst_desc(), dy);
    memory diff_src = cc.need_diff_src ? make_memory(src_md, Vec(size_t(xs.size()), 7.0)) : memory();
    // Garbage in the gradient buffer: backward must overwrite its slices, not add to them.
    std::fill(store.grads(), store.grads() + store.size(), 7.f);
    layer.backward(src, dst, diff_dst, diff_src);
    DnnlContext::get().stream.wait();

    const ConvGrads ref = nc.backward(xd, wd, bd, dy);
    const Vec dw = to_f64(store.grad(wi), cc.weight_count()), db = to_f64(store.grad(bi), cc.out_c);
    EXPECT_TRUE(all_close(dw, ref.dweight, 1e-4, 1e-4 * std::max(1.0, max_abs(ref.dweight)))) << "dweight";
    EXPECT_TRUE(all_close(db, ref.dbias, 1e-4, 1e-4 * std::max(1.0, max_abs(ref.dbias)))) << "dbias";
    Vec dx;
    if (cc.need_diff_src) {
        dx = read_f64(diff_src);
        EXPECT_TRUE(all_close(dx, ref.dx, 1e-4, 1e-4 * std::max(1.0, max_abs(ref.dx)), &xs)) << "diff_src";
    }

    // (c) Float central differences of the layer itself on a few coordinates. ReLU needs a
    // smaller step so that few outputs cross their kink; those coordinates are skipped.
    std::vector<float> xin = xf;
    auto run = [&]() {
        write_plain(xin.data(), src);
        layer.forward(src, dst);
        DnnlContext::get().stream.wait();
        return to_plain(dst);
    };
    const bool relu = cc.post == PostOp::relu;
    const float h = relu ? 2e-3f : 1e-2f;
    const std::vector<float> y0 = run();
    const std::vector<float>* kinks = relu ? &y0 : nullptr;
    FloatFdCheck fd;
    if (cc.need_diff_src)
        for (int64_t i : pick_indices(xs.size(), 5, 31))
            fd.add("x" + xs.coord(i), float_difference(run, xin[size_t(i)], dy, h, kinks), dx[size_t(i)]);
    for (int64_t i : pick_indices(cc.weight_count(), 5, 32))
        fd.add("w[" + std::to_string(i) + "]", float_difference(run, store.param(wi)[i], dy, h, kinks),
               dw[size_t(i)]);
    for (int64_t i : pick_indices(cc.out_c, 2, 33))
        fd.add("b[" + std::to_string(i) + "]", float_difference(run, store.param(bi)[i], dy, h, kinks),
               db[size_t(i)]);
    EXPECT_TRUE(fd.result());
}

std::vector<ConvCase> layer_cases() {
    std::vector<ConvCase> v;
    // Every kernel and post-op, with small channel counts (channels-last) and with 16 and more
    // (blocked layouts), from a plain src (the layer reorders it).
    for (int nd : {2, 3})
        for (int kind = 0; kind < 3; ++kind)
            for (PostOp post : {PostOp::none, PostOp::relu, PostOp::sigmoid})
                for (auto ch : {std::pair<int64_t, int64_t>{3, 5}, {16, 32}}) {
                    ConvCase c;
                    c.nd = nd;
                    c.kernel = kind == 0 ? 1 : kind == 1 ? 3 : 2;
                    c.transposed = kind == 2;
                    c.post = post;
                    c.in_c = ch.first;
                    c.out_c = ch.second;
                    v.push_back(c);
                }
    // Mixed channel counts across 16, other src layouts, and no backward-data.
    for (int nd : {2, 3}) {
        for (int kind = 0; kind < 3; ++kind) {
            ConvCase c;
            c.nd = nd;
            c.kernel = kind == 0 ? 1 : kind == 1 ? 3 : 2;
            c.transposed = kind == 2;
            c.post = PostOp::relu;
            c.in_c = 4;
            c.out_c = 16;
            v.push_back(c);
            c.in_c = 32;
            c.out_c = 8;
            v.push_back(c);
        }
        for (Layout layout : {Layout::channels_last, Layout::blocked16})
            for (int64_t ch : {3, 16}) {
                ConvCase c;
                c.nd = nd;
                c.post = PostOp::relu;
                c.in_c = ch;
                c.out_c = ch;
                c.src_layout = layout;
                v.push_back(c);
            }
        for (int64_t ch : {3, 16}) {
            ConvCase c;
            c.nd = nd;
            c.in_c = ch;
            c.out_c = 8;
            c.need_diff_src = false;
            v.push_back(c);
            c.transposed = true;
            c.kernel = 2;
            v.push_back(c);
        }
    }
    return v;
}

INSTANTIATE_TEST_SUITE_P(All, ConvLayerTest, ::testing::ValuesIn(layer_cases()),
                         [](const auto& info) { return info.param.name(); });

// --- layouts and argument checks ----------------------------------------------------------------------

TEST(ConvLayer, NoReorderForChannelsLastSmallChannels) {
    for (int nd : {2, 3}) {
        const Dims dims = nd == 2 ? Dims{1, 4, 6, 6} : Dims{1, 4, 4, 4, 4};
        const ConvSpec spec{8, 3, PostOp::relu, false};
        ParamStore store;
        ConvLayer::register_params(store, "c", 4, spec, nd);
        store.finalize();
        // Fewer than 16 channels: the primitive is given channels-last and keeps it.
        ConvLayer cl(f32_desc(dims, channels_last_tag(nd + 2)), spec, store, "c");
        EXPECT_FALSE(cl.reorders_in_use()) << nd << "D";
        EXPECT_EQ(layout_name(cl.dst_desc()), nd == 2 ? "acdb" : "acdeb");
        ConvLayer plain(f32_desc(dims, plain_tag(nd + 2)), spec, store, "c");
        EXPECT_TRUE(plain.reorders_in_use()) << nd << "D";
    }
}

TEST(ConvLayer, RejectsBadKernels) {
    ParamStore store;
    ConvLayer::register_params(store, "even", 2, ConvSpec{2, 2, PostOp::none, false}, 2);
    ConvLayer::register_params(store, "up3", 2, ConvSpec{2, 3, PostOp::none, true}, 2);
    ConvLayer::register_params(store, "ok", 2, ConvSpec{2, 3, PostOp::none, false}, 2);
    store.finalize();
    const memory::desc md = f32_desc({1, 2, 4, 4}, Tag::nchw);
    EXPECT_THROW(ConvLayer(md, ConvSpec{2, 2, PostOp::none, false}, store, "even"), std::logic_error);
    EXPECT_THROW(ConvLayer(md, ConvSpec{2, 3, PostOp::none, true}, store, "up3"), std::logic_error);
    // A weight registered for another input channel count is refused.
    EXPECT_NO_THROW(ConvLayer(md, ConvSpec{2, 3, PostOp::none, false}, store, "ok"));
    EXPECT_THROW(ConvLayer(f32_desc({1, 3, 4, 4}, Tag::nchw), ConvSpec{2, 3, PostOp::none, false}, store, "ok"),
                 std::logic_error);
}

}  // namespace
}  // namespace unet
