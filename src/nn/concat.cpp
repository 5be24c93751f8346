#include "unet/nn/concat.h"

#include <cstring>

#include "unet/core/check.h"

namespace unet {

namespace {

// A dense activation seen as rows of channel runs: plain or channel-blocked (without padding)
// layouts have one row per sample holding C * spatial floats; channels-last has one row per
// (sample, spatial point) holding C floats. Concatenating along C concatenates rows.
struct Rows {
    int64_t rows = 0, run = 0;  // run: floats of this tensor per row
    int kind = 0;               // 1 channel-outer, 2 channels-last, 0 neither
};

Rows rows_of(const memory::desc& md) {
    if (md.data.format_kind != dnnl_blocked) return {};
    const ChannelLayout L(md);
    if (L.c % L.block != 0) return {};
    if (L.stride_s == L.block && L.stride_cblock == L.spatial * L.block && L.stride_n == L.c * L.spatial)
        return {L.n, L.c * L.spatial, 1};
    if (L.block == 1 && L.stride_cblock == 1 && L.stride_s == L.c && L.stride_n == L.c * L.spatial)
        return {L.n * L.spatial, L.c, 2};
    return {};
}

}  // namespace

Concat::Concat(const memory::desc& a_desc, const memory::desc& b_desc) {
    auto& ctx = DnnlContext::get();
    in_md_[0] = a_desc;
    in_md_[1] = b_desc;
    const Dims ad = a_desc.dims(), bd = b_desc.dims();
    UNET_CHECK(ad.size() == bd.size() && ad[0] == bd[0], "concat inputs differ in rank or batch");
    for (size_t i = 2; i < ad.size(); ++i) UNET_CHECK(ad[i] == bd[i], "concat inputs differ in spatial size");
    Dims out = ad;
    out[1] = ad[1] + bd[1];
    dnnl::concat::primitive_desc pd(any_desc(out), 1, {a_desc, b_desc}, ctx.engine);
    dst_md_ = pd.dst_desc();
    fwd_ = dnnl::concat(pd);

    const Rows ra = rows_of(a_desc), rb = rows_of(b_desc), rd = rows_of(dst_md_);
    if (ra.kind != 0 && ra.kind == rb.kind && rb.kind == rd.kind && ra.rows == rd.rows) {
        const ChannelLayout La(a_desc), Lb(b_desc), Ld(dst_md_);
        contiguous_ = La.block == Ld.block && Lb.block == Ld.block;
        rows_ = rd.rows;
        run_[0] = ra.run;
        run_[1] = rb.run;
        offset_[0] = 0;
        offset_[1] = ra.run;
        dst_row_ = rd.run;
    }
    Dims off(out.size(), 0);
    view_md_[0] = dst_md_.submemory_desc(ad, off);
    off[1] = ad[1];
    view_md_[1] = dst_md_.submemory_desc(bd, off);
    for (int i = 0; i < 2; ++i) {
        split_[i] = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.engine, view_md_[i], ctx.engine, in_md_[i]));
        dnnl::post_ops ops;
        ops.append_sum(1.f);
        dnnl::primitive_attr attr;
        attr.set_post_ops(ops);
        split_add_[i] = dnnl::reorder(dnnl::reorder::primitive_desc(ctx.engine, view_md_[i], ctx.engine, in_md_[i], attr));
    }
}

void Concat::forward(const memory& a, const memory& b, const memory& dst) {
    auto& s = DnnlContext::get().stream;
    if (!contiguous_) {
        fwd_.execute(s, {{DNNL_ARG_MULTIPLE_SRC, a}, {DNNL_ARG_MULTIPLE_SRC + 1, b}, {DNNL_ARG_DST, dst}});
        return;
    }
    s.wait();
    float* out = static_cast<float*>(dst.get_data_handle());
    const float* in[2] = {static_cast<const float*>(a.get_data_handle()), static_cast<const float*>(b.get_data_handle())};
    const int64_t n = rows_;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; ++i)
        for (int w = 0; w < 2; ++w)
            std::memcpy(out + i * dst_row_ + offset_[w], in[w] + i * run_[w], sizeof(float) * size_t(run_[w]));
}

void Concat::backward(const memory& diff_dst, int which, const memory& diff, bool accumulate) {
    auto& ctx = DnnlContext::get();
    if (!contiguous_) {
        memory view(view_md_[which], ctx.engine, diff_dst.get_data_handle());
        (accumulate ? split_add_ : split_)[which].execute(ctx.stream, {{DNNL_ARG_FROM, view}, {DNNL_ARG_TO, diff}});
        return;
    }
    ctx.stream.wait();
    const float* src = static_cast<const float*>(diff_dst.get_data_handle()) + offset_[which];
    float* out = static_cast<float*>(diff.get_data_handle());
    const int64_t n = rows_, run = run_[which];
    if (!accumulate) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * run, src + i * dst_row_, sizeof(float) * size_t(run));
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < run; ++k) out[i * run + k] += src[i * dst_row_ + k];
}

}  // namespace unet
