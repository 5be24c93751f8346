#include "unet/nn/pool.h"

#include "unet/core/check.h"

namespace unet {

MaxPool::MaxPool(const memory::desc& src_desc) : src_md_(src_desc) {
    auto& ctx = DnnlContext::get();
    const Dims d = src_desc.dims();
    const size_t sd = d.size() - 2;
    Dims out = d;
    for (size_t i = 2; i < d.size(); ++i) {
        UNET_CHECK(d[i] % 2 == 0, "max-pool input size " << d[i] << " is odd");
        out[i] = d[i] / 2;
    }
    const Dims two(sd, 2), zero(sd, 0);
    dnnl::pooling_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max,
                                   src_desc, any_desc(out), two, two, zero, zero);
    dnnl::pooling_forward::primitive_desc fpd(fd, ctx.engine);
    dst_md_ = fpd.dst_desc();
    fwd_ = dnnl::pooling_forward(fpd);
    workspace_ = memory(fpd.workspace_desc(), ctx.engine);
    dnnl::pooling_backward::desc bd(dnnl::algorithm::pooling_max, src_desc, dst_md_, two, two, zero, zero);
    bwd_ = dnnl::pooling_backward(dnnl::pooling_backward::primitive_desc(bd, ctx.engine, fpd));
}

void MaxPool::forward(const memory& src, const memory& dst) {
    fwd_.execute(DnnlContext::get().stream,
                 {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_WORKSPACE, workspace_}});
}

void MaxPool::backward(const memory& diff_dst, const memory& diff_src) {
    bwd_.execute(DnnlContext::get().stream,
                 {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_WORKSPACE, workspace_}});
}

}  // namespace unet
