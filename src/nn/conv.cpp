#include "unet/nn/conv.h"

#include <unordered_map>

#include "unet/core/check.h"
#include "unet/nn/depth_sliced_weights_grad.h"
#include "unet/nn/depth_stacked_conv.h"

namespace unet {

using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

Dims weight_dims(int64_t in_c, const ConvSpec& spec, int spatial_dims) {
    // oneDNN's logical order is always (OC, IC, k...), for deconvolution too.
    Dims d{spec.out_channels, in_c};
    for (int i = 0; i < spatial_dims; ++i) d.push_back(spec.kernel);
    return d;
}

Dims torch_weight_shape(int64_t in_c, const ConvSpec& spec, int spatial_dims) {
    Dims d = spec.transposed ? Dims{in_c, spec.out_channels} : Dims{spec.out_channels, in_c};
    for (int i = 0; i < spatial_dims; ++i) d.push_back(spec.kernel);
    return d;
}

// The registered weight's PyTorch-order view for a layer using input channels
// [in_offset, in_offset + in_c) of weight_in_c: its own dims, strides into the full tensor.
memory::desc weight_view_desc(int64_t in_c, int64_t weight_in_c, const ConvSpec& spec, int spatial_dims) {
    const Dims dims = weight_dims(in_c, spec, spatial_dims);
    int64_t taps = 1;
    for (int i = 0; i < spatial_dims; ++i) taps *= spec.kernel;
    Dims strides{weight_in_c * taps, taps};
    for (int i = 0; i < spatial_dims; ++i) {
        taps /= spec.kernel;
        strides.push_back(taps);
    }
    return memory::desc(dims, memory::data_type::f32, strides);
}

algorithm post_op_algorithm(PostOp p) {
    return p == PostOp::relu ? algorithm::eltwise_relu : algorithm::eltwise_logistic;
}
algorithm post_op_bwd_algorithm(PostOp p) {
    return p == PostOp::relu ? algorithm::eltwise_relu_use_dst_for_bwd
                             : algorithm::eltwise_logistic_use_dst_for_bwd;
}

}  // namespace

struct ConvLayer::Impl {
    ConvSpec spec;
    int nd = 0;
    int64_t in_c = 0;
    int64_t weight_in_c = 0;  // the registered weight's input channels (more when split)
    double flops = 0;
    float* weight = nullptr;  // flat, PyTorch order
    int64_t weight_row = 0;   // floats between output channels of the registered weight
    float* bias = nullptr;
    float* diff_weight = nullptr;
    float* diff_bias = nullptr;

    memory::desc given_src_md, src_md, dst_md;
    dnnl::primitive fwd, bwd_data, bwd_weights, post_op_bwd;
    std::unique_ptr<DepthSlicedWeightsGrad> sliced_weights_grad;  // instead of bwd_weights where oneDNN has no JIT
    std::unique_ptr<DepthStackedConv> stacked_fwd;  // instead of fwd: a 3D layer with few outputs
    std::string fwd_impl, bwd_weights_impl;
    bool has_bwd_data = false;
    bool winograd = false;

    memory flat_weights, flat_diff_weights, bias_mem, diff_bias_mem;
    memory fwd_weights, bwd_data_weights, diff_weights;  // layouts the primitives chose
    memory src_copy, diff_src_copy;                       // only when src arrives in another layout
    memory::desc fwd_scratchpad, bwd_data_scratchpad, bwd_weights_scratchpad;  // on DnnlContext's shared buffer

    template <class Fwd, class BwdData, class BwdWeights>
    void build(algorithm alg, const Dims& strides, const Dims& pad, const Dims& dst_dims, bool free_layouts);
    void load_weights();
};

template <class Fwd, class BwdData, class BwdWeights>
void ConvLayer::Impl::build(algorithm alg, const Dims& strides, const Dims& pad, const Dims& dst_dims,
                            bool free_layouts) {
    auto& ctx = DnnlContext::get();
    const Dims src_dims = given_src_md.dims();
    const Dims w_dims = weight_dims(in_c, spec, nd - 2);
    // A plain input (the network's) is reordered once into what suits the primitive. Any other
    // input layout is kept, and channels-last stays channels-last: oneDNN 2.6 falls back to its
    // reference kernel for a channels-last src with a blocked or `any` dst.
    const bool plain_input = given_src_md == f32_desc(src_dims, plain_tag(nd));
    // `free_layouts` (Winograd, which has blocked kernels only) lets the primitive pick both.
    const memory::desc src_any =
        free_layouts ? any_desc(src_dims) : plain_input ? conv_data_desc(src_dims) : given_src_md;
    const bool channels_last = is_channels_last(src_any);
    const memory::desc dst_any = !spec.dst_layout.is_zero() ? spec.dst_layout
                                 : channels_last ? f32_desc(dst_dims, channels_last_tag(nd)) : any_desc(dst_dims);
    const memory::desc w_any = any_desc(w_dims);
    const memory::desc b_md = f32_desc({spec.out_channels}, Tag::x);

    // The accumulating part of a split convolution has no bias: the first part added it.
    typename Fwd::desc fd = spec.accumulate
        ? typename Fwd::desc(prop_kind::forward_inference, alg, src_any, w_any, dst_any, strides, pad, pad)
        : typename Fwd::desc(prop_kind::forward_training, alg, src_any, w_any, b_md, dst_any, strides, pad, pad);
    dnnl::primitive_attr attr = user_scratchpad_attr();
    dnnl::post_ops ops;
    if (spec.accumulate) ops.append_sum(1.f);
    if (spec.post_op != PostOp::none) ops.append_eltwise(1.f, post_op_algorithm(spec.post_op), 0.f, 0.f);
    attr.set_post_ops(ops);
    typename Fwd::primitive_desc fpd(fd, attr, ctx.engine);
    src_md = fpd.src_desc();
    dst_md = fpd.dst_desc();
    fwd_impl = fpd.impl_info_str();
    // A 3D layer with few output channels runs its forward faster as 2D convolutions with the depth
    // taps stacked as outputs (see depth_stacked_conv.h), into the same dst layout; the backward
    // primitives are still built against oneDNN's forward.
    if (!spec.transposed && spec.post_op != PostOp::sigmoid && src_md == given_src_md)
        stacked_fwd = DepthStackedConv::make(src_md, dst_md, spec.kernel);
    if (stacked_fwd) {
        fwd_impl = stacked_fwd->impl();
        ctx.note_scratchpad_bytes(stacked_fwd->scratchpad_bytes());
    } else {
        fwd = Fwd(fpd);
        fwd_scratchpad = fpd.scratchpad_desc();
        ctx.note_scratchpad(fpd);
    }

    const Tag w_tag = spec.transposed ? deconv_weights_plain_tag(nd) : weights_plain_tag(nd);
    flat_weights = weight_in_c == in_c ? memory(f32_desc(w_dims, w_tag), ctx.engine, weight)
                                       : memory(weight_view_desc(in_c, weight_in_c, spec, nd - 2), ctx.engine, weight);
    flat_diff_weights = memory(f32_desc(w_dims, w_tag), ctx.engine, diff_weight);
    bias_mem = memory(b_md, ctx.engine, bias);
    diff_bias_mem = memory(b_md, ctx.engine, diff_bias);
    // When a primitive's weight layout is the plain one (1x1 convolutions often), it works on
    // the flat buffers directly and no reorder runs.
    auto weights_for = [&](const memory::desc& md, const memory& flat) {
        return md == flat.get_desc() ? flat : memory(md, ctx.engine);
    };
    fwd_weights = weights_for(fpd.weights_desc(), flat_weights);
    if (has_bwd_data) {
        typename BwdData::desc bdd(alg, src_md, w_any, dst_md, strides, pad, pad);
        typename BwdData::primitive_desc bdpd(bdd, user_scratchpad_attr(), ctx.engine, fpd);
        UNET_CHECK(bdpd.diff_src_desc() == src_md, "backward-data picked another src layout");
        bwd_data = BwdData(bdpd);
        bwd_data_scratchpad = bdpd.scratchpad_desc();
        ctx.note_scratchpad(bdpd);
        bwd_data_weights = bdpd.weights_desc() == fpd.weights_desc()
                               ? fwd_weights
                               : weights_for(bdpd.weights_desc(), flat_weights);
    }
    if (spec.forward_only) {
        if (src_md != given_src_md) src_copy = memory(src_md, ctx.engine);
        return;
    }
    typename BwdWeights::desc bwd(alg, src_md, w_any, b_md, dst_md, strides, pad, pad);
    typename BwdWeights::primitive_desc bwpd(bwd, user_scratchpad_attr(), ctx.engine, fpd);
    UNET_CHECK(bwpd.src_desc() == src_md && bwpd.diff_dst_desc() == dst_md,
               "backward-weights picked other data layouts");
    bwd_weights_impl = bwpd.impl_info_str();
    // A 3D convolution's backward-weights on AVX2 is gemm or reference code in oneDNN 2.6.3; with
    // few output channels the same gradient from 2D JIT kernels over depth slices costs a third.
    if (!spec.transposed && is_fallback_kernel(bwd_weights_impl))
        sliced_weights_grad = DepthSlicedWeightsGrad::make(src_md, dst_md, spec.kernel);
    if (sliced_weights_grad) {
        bwd_weights_impl = sliced_weights_grad->impl();
        ctx.note_scratchpad_bytes(sliced_weights_grad->scratchpad_bytes());
    } else {
        bwd_weights = BwdWeights(bwpd);
        bwd_weights_scratchpad = bwpd.scratchpad_desc();
        ctx.note_scratchpad(bwpd);
        diff_weights = weights_for(bwpd.diff_weights_desc(), flat_diff_weights);
    }

    if (spec.post_op != PostOp::none) {
        dnnl::eltwise_backward::desc ed(post_op_bwd_algorithm(spec.post_op), dst_md, dst_md, 0.f, 0.f);
        dnnl::eltwise_forward::desc efd(prop_kind::forward_training, post_op_bwd_algorithm(spec.post_op),
                                        dst_md, 0.f, 0.f);
        dnnl::eltwise_forward::primitive_desc efpd(efd, ctx.engine);
        post_op_bwd = dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(ed, ctx.engine, efpd));
    }

    if (src_md != given_src_md) {
        src_copy = memory(src_md, ctx.engine);
        if (has_bwd_data) diff_src_copy = memory(src_md, ctx.engine);
    }
}

void ConvLayer::register_params(ParamStore& store, const std::string& name, int64_t in_channels,
                                const ConvSpec& spec, int spatial_dims) {
    store.add(name + ".weight", torch_weight_shape(in_channels, spec, spatial_dims));
    store.add(name + ".bias", {spec.out_channels});
}

ConvLayer::ConvLayer(const memory::desc& src_desc, const ConvSpec& spec, ParamStore& store,
                     const std::string& name, bool need_diff_src)
    : impl_(new Impl) {
    Impl& m = *impl_;
    m.spec = spec;
    m.given_src_md = src_desc;
    m.nd = src_desc.data.ndims;
    m.in_c = src_desc.dims()[1];
    m.has_bwd_data = need_diff_src && !spec.forward_only;
    m.weight_in_c = spec.weight_in_channels > 0 ? spec.weight_in_channels : m.in_c;
    const bool split = m.weight_in_c != m.in_c || spec.accumulate;
    UNET_CHECK(!split || (spec.forward_only && !spec.transposed && spec.in_offset >= 0 &&
                          spec.in_offset + m.in_c <= m.weight_in_c),
               "ConvLayer " << name << ": a split convolution is forward-only, not transposed, within its weight");
    UNET_CHECK(store.finalized(), "ConvLayer " << name << ": store not finalized");
    const int wi = store.find(name + ".weight"), bi = store.find(name + ".bias");
    UNET_CHECK(wi >= 0 && bi >= 0, "ConvLayer " << name << ": parameters not registered");
    UNET_CHECK(store.view(wi).shape == torch_weight_shape(m.weight_in_c, spec, m.nd - 2),
               "ConvLayer " << name << ": registered weight shape does not match the input");
    int64_t taps_per_channel = 1;
    for (int i = 2; i < m.nd; ++i) taps_per_channel *= spec.kernel;
    m.weight = store.param(wi) + spec.in_offset * taps_per_channel;
    m.weight_row = m.weight_in_c * taps_per_channel;
    m.bias = store.param(bi);
    m.diff_weight = store.grad(wi);
    m.diff_bias = store.grad(bi);

    const int sd = m.nd - 2;
    const Dims src_dims = src_desc.dims();
    const Dims spatial(src_dims.begin() + 2, src_dims.end());
    double taps = 1;
    for (int i = 0; i < sd; ++i) taps *= double(spec.kernel);
    if (spec.transposed) {
        UNET_CHECK(spec.kernel == 2, "transposed convolution supports kernel 2 only");
        Dims out_spatial = spatial;
        for (auto& s : out_spatial) s *= 2;
        m.build<dnnl::deconvolution_forward, dnnl::deconvolution_backward_data,
                dnnl::deconvolution_backward_weights>(
            algorithm::deconvolution_direct, Dims(size_t(sd), 2), Dims(size_t(sd), 0),
            act_dims(src_desc.dims()[0], spec.out_channels, out_spatial), false);
        m.flops = 2.0 * double(product(src_desc.dims())) * double(spec.out_channels) * taps;
    } else {
        UNET_CHECK(spec.kernel % 2 == 1, "convolution kernel must be odd");
        const Dims dst_dims = act_dims(src_desc.dims()[0], spec.out_channels, spatial);
        const Dims ones(size_t(sd), 1), pad(size_t(sd), spec.kernel / 2);
        // oneDNN 2.6 has f32 Winograd F(4x4, 3x3) for forward and both backward passes on
        // AVX-512, 2D only, 16-channel multiples; it runs the level-0 layers of a 2D UNet about
        // 4x faster than the direct kernels. Where it does not apply, direct it is.
        m.winograd = spec.winograd && sd == 2 && spec.kernel == 3 && m.in_c % 16 == 0 && spec.out_channels % 16 == 0;
        if (m.winograd) {
            try {
                m.build<dnnl::convolution_forward, dnnl::convolution_backward_data,
                        dnnl::convolution_backward_weights>(algorithm::convolution_winograd, ones, pad, dst_dims, true);
            } catch (const dnnl::error&) {
                m.winograd = false;
            }
        }
        if (!m.winograd)
            m.build<dnnl::convolution_forward, dnnl::convolution_backward_data,
                    dnnl::convolution_backward_weights>(algorithm::convolution_direct, ones, pad, dst_dims, false);
        m.flops = 2.0 * double(product(m.dst_md.dims())) * double(m.in_c) * taps;
    }
}

ConvLayer::~ConvLayer() = default;

const memory::desc& ConvLayer::dst_desc() const { return impl_->dst_md; }
size_t ConvLayer::forward_scratchpad_bytes() const {
    return impl_->stacked_fwd ? impl_->stacked_fwd->scratchpad_bytes() : impl_->fwd_scratchpad.get_size();
}
const std::string& ConvLayer::forward_impl() const { return impl_->fwd_impl; }
bool ConvLayer::reorders_in_use() const { return bool(impl_->src_copy); }
bool ConvLayer::uses_winograd() const { return impl_->winograd; }
const std::string& ConvLayer::backward_weights_impl() const { return impl_->bwd_weights_impl; }
double ConvLayer::forward_flops() const { return impl_->flops; }

void ConvLayer::Impl::load_weights() {
    auto& s = DnnlContext::get().stream;
    // Weights move through the flat buffer (optimizer, parameter server); the primitive's own
    // layout is refreshed from it before each use. Plain -> blocked is a few MB at most.
    if (fwd_weights.get_data_handle() != weight)
        dnnl::reorder(flat_weights, fwd_weights).execute(s, flat_weights, fwd_weights);
    if (has_bwd_data && bwd_data_weights.get_data_handle() != fwd_weights.get_data_handle() &&
        bwd_data_weights.get_data_handle() != weight)
        dnnl::reorder(flat_weights, bwd_data_weights).execute(s, flat_weights, bwd_data_weights);
}

void ConvLayer::forward(const memory& src_in, const memory& dst) {
    auto& s = DnnlContext::get().stream;
    impl_->load_weights();
    if (impl_->stacked_fwd) {
        const Impl& m = *impl_;
        m.stacked_fwd->forward(src_in, dst, m.weight, m.weight_row, m.spec.accumulate ? nullptr : m.bias,
                               m.spec.accumulate, m.spec.post_op == PostOp::relu);
        return;
    }
    memory src = src_in;
    if (impl_->src_copy) {
        dnnl::reorder(src_in, impl_->src_copy).execute(s, src, impl_->src_copy);
        src = impl_->src_copy;
    }
    auto& ctx = DnnlContext::get();
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_WEIGHTS, impl_->fwd_weights},
                                         {DNNL_ARG_DST, dst},
                                         {DNNL_ARG_SCRATCHPAD, ctx.scratchpad(impl_->fwd_scratchpad)}};
    if (!impl_->spec.accumulate) args[DNNL_ARG_BIAS] = impl_->bias_mem;
    impl_->fwd.execute(s, args);
}

void ConvLayer::backward(const memory& src_in, const memory& dst, const memory& diff_dst,
                         const memory& diff_src) {
    Impl& m = *impl_;
    auto& s = DnnlContext::get().stream;
    const memory src = m.src_copy ? m.src_copy : src_in;
    if (m.spec.post_op != PostOp::none)
        m.post_op_bwd.execute(s, {{DNNL_ARG_DST, dst}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_dst}});
    auto& ctx = DnnlContext::get();
    if (m.sliced_weights_grad) {
        m.sliced_weights_grad->compute(src, diff_dst, m.diff_weight, m.diff_bias_mem);
    } else {
        m.bwd_weights.execute(s, {{DNNL_ARG_SRC, src},
                                  {DNNL_ARG_DIFF_DST, diff_dst},
                                  {DNNL_ARG_DIFF_WEIGHTS, m.diff_weights},
                                  {DNNL_ARG_DIFF_BIAS, m.diff_bias_mem},
                                  {DNNL_ARG_SCRATCHPAD, ctx.scratchpad(m.bwd_weights_scratchpad)}});
        if (m.diff_weights.get_data_handle() != m.diff_weight)
            dnnl::reorder(m.diff_weights, m.flat_diff_weights).execute(s, m.diff_weights, m.flat_diff_weights);
    }
    if (m.has_bwd_data && diff_src) {
        const memory out = m.diff_src_copy ? m.diff_src_copy : diff_src;
        m.bwd_data.execute(s, {{DNNL_ARG_DIFF_DST, diff_dst},
                               {DNNL_ARG_WEIGHTS, m.bwd_data_weights},
                               {DNNL_ARG_DIFF_SRC, out},
                               {DNNL_ARG_SCRATCHPAD, ctx.scratchpad(m.bwd_data_scratchpad)}});
        if (m.diff_src_copy)
            dnnl::reorder(m.diff_src_copy, diff_src).execute(s, m.diff_src_copy, const_cast<memory&>(diff_src));
    }
}

}  // namespace unet
