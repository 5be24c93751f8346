#include "unet/nn/resample.h"

namespace unet {

Resample::Resample(const memory::desc& src_desc, ResampleMode mode) {
    auto& ctx = DnnlContext::get();
    const auto alg = mode == ResampleMode::nearest ? dnnl::algorithm::resampling_nearest
                                                   : dnnl::algorithm::resampling_linear;
    Dims out = src_desc.dims();
    for (size_t i = 2; i < out.size(); ++i) out[i] *= 2;
    dnnl::resampling_forward::desc fd(dnnl::prop_kind::forward_training, alg, src_desc, any_desc(out));
    dnnl::resampling_forward::primitive_desc fpd(fd, ctx.engine);
    dst_md_ = fpd.dst_desc();
    fwd_ = dnnl::resampling_forward(fpd);
    dnnl::resampling_backward::desc bd(alg, src_desc, dst_md_);
    bwd_ = dnnl::resampling_backward(dnnl::resampling_backward::primitive_desc(bd, ctx.engine, fpd));
}

void Resample::forward(const memory& src, const memory& dst) {
    fwd_.execute(DnnlContext::get().stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
}

void Resample::backward(const memory& diff_dst, const memory& diff_src) {
    bwd_.execute(DnnlContext::get().stream, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}});
}

}  // namespace unet
