// DepthStackedConv (a 3D convolution's forward as 2D JIT convolutions over depth planes with the
// depth taps stacked as output channels) against the naive double-precision convolution: one and
// several samples (taps must not reach across samples), kernels 3 and 5, depths of 1 and 2 (taps of
// padding only), planes in one band of rows or several (top, middle, bottom, a shorter last one),
// every output-channel count it takes, the
// bias or accumulation into what dst holds, the ReLU on the sum, a split weight (rows wider than the
// block), and garbage in dst where it is overwritten. And ConvLayer takes it for a 3D layer with
// few output channels (training and inference) where the 2D kernel is one of oneDNN's AVX2 or
// AVX-512 JIT kernels, and says so.
#include <gtest/gtest.h>

#include <algorithm>

#include "../support/naive_ops.h"
#include "unet/core/param_store.h"
#include "unet/nn/conv.h"
#include "unet/nn/depth_stacked_conv.h"

namespace unet {
namespace {

using namespace unet::testing;
using naive::Shape;
using naive::Vec;

struct StackCase {
    int64_t n, ic, oc, d, h, w, k;
};

// The block of input channels [offset, offset + ic) of a weight with `wide` input channels.
Vec weight_block(const Vec& wide_weight, int64_t oc, int64_t wide, int64_t offset, int64_t ic, int64_t taps) {
    Vec block(size_t(oc * ic * taps));
    for (int64_t o = 0; o < oc; ++o)
        for (int64_t i = 0; i < ic; ++i)
            for (int64_t t = 0; t < taps; ++t)
                block[size_t((o * ic + i) * taps + t)] = wide_weight[size_t((o * wide + offset + i) * taps + t)];
    return block;
}

TEST(DepthStackedConv, MatchesTheNaiveConvolution) {
    const std::vector<StackCase> cases{{1, 4, 8, 5, 6, 7, 3}, {2, 8, 8, 4, 5, 9, 3}, {2, 3, 5, 3, 4, 4, 3},
                                       {1, 8, 1, 7, 3, 5, 3}, {2, 4, 6, 6, 7, 7, 5}, {2, 8, 8, 1, 5, 5, 3},
                                       {3, 2, 7, 2, 4, 3, 3}, {1, 16, 2, 9, 4, 4, 3}, {2, 4, 8, 3, 11, 6, 3}, {1, 3, 4, 4, 13, 5, 5}};
    for (const StackCase& c : cases) {
        for (int mode = 0; mode < 4; ++mode) {
            // 0: bias; 1: bias + ReLU; 2: accumulate + ReLU, split weight; 3: as 1 in bands of k rows
            // (of one row's result: top, middle and bottom bands, a shorter last one)
            SCOPED_TRACE(::testing::Message() << "n " << c.n << " ic " << c.ic << " oc " << c.oc << " d " << c.d
                                              << " h " << c.h << " w " << c.w << " k " << c.k << " mode " << mode);
            Shape xs;
            xs.n = c.n, xs.c = c.ic, xs.d = c.d, xs.h = c.h, xs.w = c.w, xs.nd = 3;
            const Shape ys = xs.with_channels(c.oc);
            const memory::desc src_md = f32_desc(xs.dims(), Tag::ndhwc), dst_md = f32_desc(ys.dims(), Tag::ndhwc);
            auto conv = DepthStackedConv::make(src_md, dst_md, c.k, mode == 3 ? 1 : DepthStackedConv::kBandBytes);
            ASSERT_TRUE(conv) << "no 2D AVX2 or AVX-512 JIT kernel for these shapes";
            EXPECT_NE(conv->impl().find("by stacked depth taps"), std::string::npos) << conv->impl();

            const int64_t taps = c.k * c.k * c.k, wide = mode == 2 ? c.ic + 3 : c.ic, offset = mode == 2 ? 2 : 0;
            const Vec x = to_f64(to_f32(random_vec(xs.size(), 51)));
            const Vec wide_weight = to_f64(to_f32(random_vec(c.oc * wide * taps, 52)));
            const Vec bias = to_f64(to_f32(random_vec(c.oc, 53)));
            const Vec before = to_f64(to_f32(random_vec(ys.size(), 54)));  // dst's contents
            const Vec w = weight_block(wide_weight, c.oc, wide, offset, c.ic, taps);
            Vec expect = naive::conv_forward(xs, x, w, mode == 2 ? Vec(size_t(c.oc), 0.0) : bias, c.oc, c.k);
            if (mode == 2)
                for (size_t i = 0; i < expect.size(); ++i) expect[i] += before[i];
            if (mode > 0) expect = naive::relu_forward(expect);

            memory src = make_memory(src_md, x), dst = make_memory(dst_md, before);
            const std::vector<float> wf = to_f32(wide_weight), bf = to_f32(bias);
            conv->forward(src, dst, wf.data() + offset * taps, wide * taps, mode == 2 ? nullptr : bf.data(), mode == 2,
                          mode > 0);
            DnnlContext::get().stream.wait();
            const Vec got = to_f64(to_plain(dst));
            EXPECT_TRUE(all_close(got, expect, 1e-5, 1e-5 * std::max(1.0, max_abs(expect))));
        }
    }
}

TEST(DepthStackedConv, AppliesOnlyToChannelsLast3DWithFewOutputs) {
    EXPECT_FALSE(DepthStackedConv::make(f32_desc({1, 4, 6, 6}, Tag::nhwc), f32_desc({1, 8, 6, 6}, Tag::nhwc), 3));
    EXPECT_FALSE(DepthStackedConv::make(f32_desc({1, 8, 4, 4, 4}, Tag::nCdhw8c), f32_desc({1, 8, 4, 4, 4}, Tag::nCdhw8c), 3));
    EXPECT_FALSE(DepthStackedConv::make(f32_desc({1, 4, 4, 4, 4}, Tag::ndhwc), f32_desc({1, 8, 4, 4, 4}, Tag::ndhwc), 1));
    // Where oneDNN's own kernel fills its vectors: more than 8 output channels.
    EXPECT_FALSE(DepthStackedConv::make(f32_desc({1, 4, 4, 4, 4}, Tag::ndhwc), f32_desc({1, 16, 4, 4, 4}, Tag::ndhwc), 3));
}

TEST(DepthStackedConv, ConvLayerUsesItForThreeDLayersWithFewOutputs) {
    const Dims src{1, 8, 6, 6, 6};
    const bool available = bool(DepthStackedConv::make(f32_desc(src, Tag::ndhwc), f32_desc(src, Tag::ndhwc), 3));
    // Every CPU with AVX2 (AVX-512 ones too) has a 2D JIT kernel it takes.
    EXPECT_EQ(available, bool(__builtin_cpu_supports("avx2")));
    for (const bool forward_only : {false, true}) {
        ParamStore store;
        ConvSpec spec{8, 3, PostOp::relu};
        spec.forward_only = forward_only;
        ConvLayer::register_params(store, "c", 8, spec, 3);
        store.finalize();
        ConvLayer layer(f32_desc(src, Tag::ndhwc), spec, store, "c");
        EXPECT_EQ(layer.forward_impl().find("by stacked depth taps") != std::string::npos, available)
            << "forward_only " << forward_only << ": " << layer.forward_impl();
    }
    // 16 output channels fill two vectors: oneDNN's own kernel.
    ParamStore store;
    const ConvSpec wide{16, 3, PostOp::relu};
    ConvLayer::register_params(store, "w", 8, wide, 3);
    store.finalize();
    ConvLayer layer(f32_desc(src, Tag::ndhwc), wide, store, "w");
    EXPECT_EQ(layer.forward_impl().find("stacked"), std::string::npos) << layer.forward_impl();
}

}  // namespace
}  // namespace unet
