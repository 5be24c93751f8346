#include "unet/nn/concat.h"

#include "unet/core/check.h"

namespace unet {

Concat::Concat(const memory::desc& a_desc, const memory::desc& b_desc) : a_md_(a_desc), b_md_(b_desc) {
    auto& ctx = DnnlContext::get();
    const Dims ad = a_desc.dims(), bd = b_desc.dims();
    UNET_CHECK(ad.size() == bd.size() && ad[0] == bd[0], "concat inputs differ in rank or batch");
    for (size_t i = 2; i < ad.size(); ++i) UNET_CHECK(ad[i] == bd[i], "concat inputs differ in spatial size");
    Dims out = ad;
    out[1] = ad[1] + bd[1];
    dnnl::concat::primitive_desc pd(any_desc(out), 1, {a_desc, b_desc}, ctx.engine);
    dst_md_ = pd.dst_desc();
    fwd_ = dnnl::concat(pd);
    Dims off(out.size(), 0);
    view_md_[0] = dst_md_.submemory_desc(ad, off);
    off[1] = ad[1];
    view_md_[1] = dst_md_.submemory_desc(bd, off);
    const memory::desc* in_md[2] = {&a_md_, &b_md_};
    for (int i = 0; i < 2; ++i) {
        split_[i] = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.engine, view_md_[i], ctx.engine, *in_md[i]));
        dnnl::post_ops ops;
        ops.append_sum(1.f);
        dnnl::primitive_attr attr;
        attr.set_post_ops(ops);
        split_add_[i] = dnnl::reorder(
            dnnl::reorder::primitive_desc(ctx.engine, view_md_[i], ctx.engine, *in_md[i], attr));
    }
}

void Concat::forward(const memory& a, const memory& b, const memory& dst) {
    fwd_.execute(DnnlContext::get().stream, {{DNNL_ARG_MULTIPLE_SRC, a}, {DNNL_ARG_MULTIPLE_SRC + 1, b}, {DNNL_ARG_DST, dst}});
}

void Concat::backward(const memory& diff_dst, int which, const memory& diff, bool accumulate) {
    auto& ctx = DnnlContext::get();
    memory view(view_md_[which], ctx.engine, diff_dst.get_data_handle());
    (accumulate ? split_add_ : split_)[which].execute(ctx.stream, {{DNNL_ARG_FROM, view}, {DNNL_ARG_TO, diff}});
}

}  // namespace unet
