// DepthSlicedWeightsGrad (a 3D convolution's weight gradient as 2D JIT weight gradients over depth
// slices) against the naive double-precision convolution backward: one and several samples (the
// shifted planes must not pair across samples), kernels 1, 3 and 5, a depth shorter than the
// kernel's reach (tap planes of padding only), 32 input channels, and garbage in the
// output buffers (overwritten, not added to). And ConvLayer takes it where oneDNN's own 3D
// backward-weights is gemm or reference code (AVX2) and the layer has at most 16 output channels,
// and says so.
#include <gtest/gtest.h>

#include <algorithm>

#include "../support/naive_ops.h"
#include "unet/core/param_store.h"
#include "unet/nn/conv.h"
#include "unet/nn/depth_sliced_weights_grad.h"

namespace unet {
namespace {

using namespace unet::testing;
using naive::Shape;
using naive::Vec;

struct SliceCase {
    int64_t n, ic, oc, d, h, w, k;
};

TEST(DepthSlicedWeightsGrad, MatchesTheNaiveWeightAndBiasGradients) {
    for (const SliceCase& c : {SliceCase{1, 4, 8, 5, 6, 7, 3}, SliceCase{2, 3, 5, 4, 5, 3, 3},
                               SliceCase{3, 32, 16, 3, 4, 4, 3}, SliceCase{2, 8, 8, 2, 8, 8, 5},
                               SliceCase{2, 8, 8, 1, 5, 5, 3}, SliceCase{2, 4, 6, 4, 3, 5, 1}}) {
        SCOPED_TRACE(::testing::Message() << "n " << c.n << " ic " << c.ic << " oc " << c.oc << " d " << c.d
                                          << " h " << c.h << " w " << c.w << " k " << c.k);
        Shape xs;
        xs.n = c.n, xs.c = c.ic, xs.d = c.d, xs.h = c.h, xs.w = c.w, xs.nd = 3;
        Shape ys = xs.with_channels(c.oc);
        const memory::desc src_md = f32_desc(xs.dims(), Tag::ndhwc), dst_md = f32_desc(ys.dims(), Tag::ndhwc);
        auto grad = DepthSlicedWeightsGrad::make(src_md, dst_md, c.k);
        ASSERT_TRUE(grad) << "no 2D JIT kernel for these shapes";
        EXPECT_NE(grad->impl().find("by depth slices"), std::string::npos) << grad->impl();

        const Vec x = to_f64(to_f32(random_vec(xs.size(), 41))), dy = to_f64(to_f32(random_vec(ys.size(), 42)));
        const int64_t weights = c.oc * c.ic * c.k * c.k * c.k;
        const naive::ConvGrads ref = naive::conv_backward(xs, x, Vec(size_t(weights), 0.0), c.oc, c.k, dy);

        memory src = make_memory(src_md, x), diff_dst = make_memory(dst_md, dy);
        std::vector<float> dw(size_t(weights), 7.f);  // garbage: must be overwritten
        std::vector<float> db(size_t(c.oc), 7.f);
        grad->compute(src, diff_dst, dw.data(), memory(f32_desc({c.oc}, Tag::x), DnnlContext::get().engine, db.data()));
        DnnlContext::get().stream.wait();
        const Vec dwd = to_f64(dw), dbd = to_f64(db);
        EXPECT_TRUE(all_close(dwd, ref.dweight, 1e-4, 1e-4 * std::max(1.0, max_abs(ref.dweight)))) << "dweight";
        EXPECT_TRUE(all_close(dbd, ref.dbias, 1e-4, 1e-4 * std::max(1.0, max_abs(ref.dbias)))) << "dbias";
    }
}

TEST(DepthSlicedWeightsGrad, AppliesOnlyToChannelsLast3D) {
    EXPECT_FALSE(DepthSlicedWeightsGrad::make(f32_desc({1, 4, 6, 6}, Tag::nhwc), f32_desc({1, 8, 6, 6}, Tag::nhwc), 3));
    EXPECT_FALSE(DepthSlicedWeightsGrad::make(f32_desc({1, 16, 4, 4, 4}, Tag::nCdhw8c),
                                              f32_desc({1, 16, 4, 4, 4}, Tag::nCdhw8c), 3));
    EXPECT_FALSE(DepthSlicedWeightsGrad::make(f32_desc({1, 4, 4, 4, 4}, Tag::ndhwc), f32_desc({1, 8, 4, 4, 4}, Tag::ndhwc), 2));
    // Where oneDNN's gemm is as fast: more than 16 output channels.
    EXPECT_FALSE(DepthSlicedWeightsGrad::make(f32_desc({1, 4, 4, 4, 4}, Tag::ndhwc), f32_desc({1, 32, 4, 4, 4}, Tag::ndhwc), 3));
}

// What oneDNN itself would run for this layer's backward-weights.
std::string onednn_backward_weights(const Dims& src, const Dims& dst, int64_t k) {
    auto& ctx = DnnlContext::get();
    const memory::desc s = f32_desc(src, Tag::ndhwc), d = f32_desc(dst, Tag::ndhwc);
    const memory::desc w = any_desc({dst[1], src[1], k, k, k}), b = f32_desc({dst[1]}, Tag::x);
    const Dims ones{1, 1, 1}, pad{k / 2, k / 2, k / 2};
    dnnl::convolution_forward::primitive_desc hint(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, s, w,
                                        b, d, ones, pad, pad),
        ctx.engine);
    dnnl::convolution_backward_weights::primitive_desc pd(
        dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, s, w, b, d, ones, pad, pad),
        ctx.engine, hint);
    return pd.impl_info_str();
}

TEST(DepthSlicedWeightsGrad, ConvLayerUsesItWhereOneDnnHasNoJitKernel) {
    const Dims src{2, 8, 6, 6, 6}, dst{2, 8, 6, 6, 6};
    ParamStore store;
    const ConvSpec spec{8, 3, PostOp::relu};
    ConvLayer::register_params(store, "c", 8, spec, 3);
    store.finalize();
    ConvLayer layer(f32_desc(src, Tag::ndhwc), spec, store, "c");
    const std::string own = onednn_backward_weights(src, dst, 3);
    const bool fallback = own.find("gemm") != std::string::npos || own.find("ref") != std::string::npos;
    if (fallback)
        EXPECT_NE(layer.backward_weights_impl().find("by depth slices"), std::string::npos)
            << "oneDNN's own: " << own << ", the layer's: " << layer.backward_weights_impl();
    else
        EXPECT_EQ(layer.backward_weights_impl(), own);
}

}  // namespace
}  // namespace unet
