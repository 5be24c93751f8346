#include "unet/nn/eltwise.h"

namespace unet {

Eltwise::Eltwise(const memory::desc& desc, Activation kind) : md_(desc) {
    auto& ctx = DnnlContext::get();
    const auto alg = kind == Activation::relu ? dnnl::algorithm::eltwise_relu_use_dst_for_bwd
                                              : dnnl::algorithm::eltwise_logistic_use_dst_for_bwd;
    dnnl::eltwise_forward::desc fd(dnnl::prop_kind::forward_training, alg, desc, 0.f);
    dnnl::eltwise_forward::primitive_desc fpd(fd, ctx.engine);
    fwd_ = dnnl::eltwise_forward(fpd);
    dnnl::eltwise_backward::desc bd(alg, desc, desc, 0.f);
    bwd_ = dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(bd, ctx.engine, fpd));
}

void Eltwise::forward(const memory& src, const memory& dst) {
    fwd_.execute(DnnlContext::get().stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
}

void Eltwise::backward(const memory& dst, const memory& diff_dst, const memory& diff_src) {
    bwd_.execute(DnnlContext::get().stream, {{DNNL_ARG_DST, dst}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}});
}

}  // namespace unet
