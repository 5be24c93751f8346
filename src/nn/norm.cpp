#include "unet/nn/norm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "unet/core/check.h"

namespace unet {

using dnnl::normalization_flags;
using dnnl::prop_kind;

NormKind parse_norm(const std::string& name) {
    if (name == "none") return NormKind::none;
    if (name == "batch") return NormKind::batch;
    if (name == "group") return NormKind::group;
    throw UsageError("--norm: expected none, batch or group, got '" + name + "'");
}

const char* norm_name(NormKind kind) {
    switch (kind) {
        case NormKind::none: return "none";
        case NormKind::batch: return "batch";
        case NormKind::group: return "group";
    }
    return "?";
}

struct NormRelu::Impl {
    NormKind kind = NormKind::none;
    int64_t groups = 1;
    memory::desc md;
    float *gamma = nullptr, *beta = nullptr, *dgamma = nullptr, *dbeta = nullptr;
    float *running_mean = nullptr, *running_var = nullptr;

    // none
    dnnl::eltwise_forward relu_fwd;
    dnnl::eltwise_backward relu_bwd;
    // batch
    dnnl::batch_normalization_forward bn_train, bn_eval;
    dnnl::batch_normalization_backward bn_bwd;
    memory scale, shift, dscale, dshift, mean, var, running_mean_mem, running_var_mem, workspace;
    // group: per (n, group) statistics of the last forward
    std::vector<double> g_mean, g_rstd;

    void build_relu();
    void build_batch();
    void group_forward(const memory& src, const memory& dst);
    void group_backward(const memory& src, const memory& dst, const memory& diff_dst, const memory& diff_src);
};

void NormRelu::register_params(ParamStore& store, const std::string& name, int64_t channels, NormKind kind) {
    if (kind == NormKind::none) return;
    store.add(name + ".weight", {channels});
    store.add(name + ".bias", {channels});
    if (kind == NormKind::batch) {
        store.add_buffer(name + ".running_mean", {channels});
        store.add_buffer(name + ".running_var", {channels});
    }
}

NormRelu::NormRelu(const memory::desc& src_desc, NormKind kind, int64_t groups, ParamStore& store,
                   const std::string& name)
    : impl_(new Impl) {
    Impl& m = *impl_;
    m.kind = kind;
    m.md = src_desc;
    const int64_t c = src_desc.dims()[1];
    if (kind != NormKind::none) {
        const int wi = store.find(name + ".weight"), bi = store.find(name + ".bias");
        UNET_CHECK(wi >= 0 && bi >= 0, "NormRelu " << name << ": parameters not registered");
        m.gamma = store.param(wi);
        m.beta = store.param(bi);
        m.dgamma = store.grad(wi);
        m.dbeta = store.grad(bi);
    }
    switch (kind) {
        case NormKind::none: m.build_relu(); break;
        case NormKind::batch: {
            const int mi = store.find_buffer(name + ".running_mean"), vi = store.find_buffer(name + ".running_var");
            UNET_CHECK(mi >= 0 && vi >= 0, "NormRelu " << name << ": running statistics not registered");
            m.running_mean = store.buffer(mi);
            m.running_var = store.buffer(vi);
            m.build_batch();
            break;
        }
        case NormKind::group:
            UNET_CHECK(groups >= 1 && c % groups == 0, "group norm: " << c << " channels not divisible by " << groups << " groups");
            m.groups = groups;
            break;
    }
}

NormRelu::~NormRelu() = default;
const memory::desc& NormRelu::dst_desc() const { return impl_->md; }

void NormRelu::Impl::build_relu() {
    auto& ctx = DnnlContext::get();
    dnnl::eltwise_forward::desc fd(prop_kind::forward_training, dnnl::algorithm::eltwise_relu_use_dst_for_bwd, md, 0.f);
    dnnl::eltwise_forward::primitive_desc fpd(fd, ctx.engine);
    relu_fwd = dnnl::eltwise_forward(fpd);
    dnnl::eltwise_backward::desc bd(dnnl::algorithm::eltwise_relu_use_dst_for_bwd, md, md, 0.f);
    relu_bwd = dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(bd, ctx.engine, fpd));
}

void NormRelu::Impl::build_batch() {
    auto& ctx = DnnlContext::get();
    const int64_t c = md.dims()[1];
    const auto flags = normalization_flags::use_scale | normalization_flags::use_shift | normalization_flags::fuse_norm_relu;
    dnnl::batch_normalization_forward::desc fd(prop_kind::forward_training, md, kEpsilon, flags);
    dnnl::batch_normalization_forward::primitive_desc fpd(fd, ctx.engine);
    bn_train = dnnl::batch_normalization_forward(fpd);
    dnnl::batch_normalization_forward::desc ed(prop_kind::forward_inference, md, kEpsilon,
                                               flags | normalization_flags::use_global_stats);
    bn_eval = dnnl::batch_normalization_forward(dnnl::batch_normalization_forward::primitive_desc(ed, ctx.engine));
    dnnl::batch_normalization_backward::desc bd(prop_kind::backward, md, md, kEpsilon, flags);
    bn_bwd = dnnl::batch_normalization_backward(dnnl::batch_normalization_backward::primitive_desc(bd, ctx.engine, fpd));
    const memory::desc vec = f32_desc({c}, Tag::x);
    scale = memory(vec, ctx.engine, gamma);
    shift = memory(vec, ctx.engine, beta);
    dscale = memory(vec, ctx.engine, dgamma);
    dshift = memory(vec, ctx.engine, dbeta);
    mean = memory(fpd.mean_desc(), ctx.engine);
    var = memory(fpd.variance_desc(), ctx.engine);
    running_mean_mem = memory(vec, ctx.engine, running_mean);
    running_var_mem = memory(vec, ctx.engine, running_var);
    workspace = memory(fpd.workspace_desc(), ctx.engine);
}

void NormRelu::forward(const memory& src, const memory& dst, bool training) {
    Impl& m = *impl_;
    auto& s = DnnlContext::get().stream;
    switch (m.kind) {
        case NormKind::none:
            m.relu_fwd.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
            break;
        case NormKind::batch:
            if (!training) {
                m.bn_eval.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCALE, m.scale},
                                      {DNNL_ARG_SHIFT, m.shift}, {DNNL_ARG_MEAN, m.running_mean_mem},
                                      {DNNL_ARG_VARIANCE, m.running_var_mem}});
                break;
            }
            m.bn_train.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCALE, m.scale},
                                   {DNNL_ARG_SHIFT, m.shift}, {DNNL_ARG_MEAN, m.mean},
                                   {DNNL_ARG_VARIANCE, m.var}, {DNNL_ARG_WORKSPACE, m.workspace}});
            s.wait();
            {
                const int64_t c = m.md.dims()[1];
                const double count = double(product(m.md.dims()) / c);
                const double unbias = count > 1 ? count / (count - 1) : 1.0;
                const float* bm = static_cast<const float*>(m.mean.get_data_handle());
                const float* bv = static_cast<const float*>(m.var.get_data_handle());
                for (int64_t i = 0; i < c; ++i) {
                    m.running_mean[i] = (1 - kMomentum) * m.running_mean[i] + kMomentum * bm[i];
                    m.running_var[i] = float((1 - kMomentum) * m.running_var[i] + kMomentum * bv[i] * unbias);
                }
            }
            break;
        case NormKind::group:
            s.wait();
            m.group_forward(src, dst);
            break;
    }
}

void NormRelu::backward(const memory& src, const memory& dst, const memory& diff_dst, const memory& diff_src) {
    Impl& m = *impl_;
    auto& s = DnnlContext::get().stream;
    switch (m.kind) {
        case NormKind::none:
            m.relu_bwd.execute(s, {{DNNL_ARG_DST, dst}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}});
            break;
        case NormKind::batch:
            // oneDNN 2.6.3 requires SHIFT at execution for every batch-norm backward built with
            // use_shift, although the documentation does not list it.
            m.bn_bwd.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_MEAN, m.mean}, {DNNL_ARG_VARIANCE, m.var},
                                 {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_SCALE, m.scale}, {DNNL_ARG_SHIFT, m.shift},
                                 {DNNL_ARG_WORKSPACE, m.workspace}, {DNNL_ARG_DIFF_SRC, diff_src},
                                 {DNNL_ARG_DIFF_SCALE, m.dscale}, {DNNL_ARG_DIFF_SHIFT, m.dshift}});
            break;
        case NormKind::group:
            s.wait();
            m.group_backward(src, dst, diff_dst, diff_src);
            break;
    }
}

// Group norm. y = relu(gamma_c * (x - mean_g) * rstd_g + beta_c), statistics per (sample, group)
// over the group's channels and all spatial points. Work is split over (sample, channel) pairs;
// per-channel partial sums are combined per group, so the result does not depend on threads.
void NormRelu::Impl::group_forward(const memory& src_mem, const memory& dst_mem) {
    const ChannelLayout L(md);
    const float* x = static_cast<const float*>(src_mem.get_data_handle());
    float* y = static_cast<float*>(dst_mem.get_data_handle());
    const int64_t N = L.n, C = L.c, S = L.spatial, cpg = C / groups;
    std::vector<double> sum(size_t(N * C)), sumsq(size_t(N * C));
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const float* p = x + L.offset(n, c, 0);
            double s1 = 0, s2 = 0;
            for (int64_t i = 0; i < S; ++i) {
                const double v = p[i * L.stride_s];
                s1 += v;
                s2 += v * v;
            }
            sum[size_t(n * C + c)] = s1;
            sumsq[size_t(n * C + c)] = s2;
        }
    g_mean.assign(size_t(N * groups), 0);
    g_rstd.assign(size_t(N * groups), 0);
    const double count = double(cpg * S);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < groups; ++g) {
            double s1 = 0, s2 = 0;
            for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
                s1 += sum[size_t(n * C + c)];
                s2 += sumsq[size_t(n * C + c)];
            }
            const double mean = s1 / count;
            const double var = std::max(0.0, s2 / count - mean * mean);
            g_mean[size_t(n * groups + g)] = mean;
            g_rstd[size_t(n * groups + g)] = 1.0 / std::sqrt(var + double(kEpsilon));
        }
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const size_t gi = size_t(n * groups + c / cpg);
            const float a = float(gamma[c] * g_rstd[gi]);
            const float b = float(beta[c] - gamma[c] * g_mean[gi] * g_rstd[gi]);
            const int64_t off = L.offset(n, c, 0);
            for (int64_t i = 0; i < S; ++i) {
                const float v = a * x[off + i * L.stride_s] + b;
                y[off + i * L.stride_s] = v > 0.f ? v : 0.f;
            }
        }
}

// Backward of relu(gamma * xhat + beta): with g = dy * [y > 0],
//   dgamma_c = sum g * xhat, dbeta_c = sum g,
//   dx = rstd * (gamma_c * g - mean_group(gamma * g) - xhat * mean_group(gamma * g * xhat)).
void NormRelu::Impl::group_backward(const memory& src_mem, const memory& dst_mem, const memory& diff_dst_mem,
                                    const memory& diff_src_mem) {
    const ChannelLayout L(md);
    const float* x = static_cast<const float*>(src_mem.get_data_handle());
    const float* y = static_cast<const float*>(dst_mem.get_data_handle());
    const float* dy = static_cast<const float*>(diff_dst_mem.get_data_handle());
    float* dx = static_cast<float*>(diff_src_mem.get_data_handle());
    const int64_t N = L.n, C = L.c, S = L.spatial, cpg = C / groups;
    std::vector<double> sg(size_t(N * C)), sgx(size_t(N * C));
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const size_t gi = size_t(n * groups + c / cpg);
            const double mean = g_mean[gi], rstd = g_rstd[gi];
            const int64_t off = L.offset(n, c, 0);
            double a = 0, b = 0;
            for (int64_t i = 0; i < S; ++i) {
                const int64_t o = off + i * L.stride_s;
                const double g = y[o] > 0.f ? dy[o] : 0.0;
                a += g;
                b += g * (x[o] - mean) * rstd;
            }
            sg[size_t(n * C + c)] = a;
            sgx[size_t(n * C + c)] = b;
        }
    std::vector<double> m1(size_t(N * groups), 0), m2(size_t(N * groups), 0);
    const double count = double(cpg * S);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const size_t gi = size_t(n * groups + c / cpg);
            m1[gi] += gamma[c] * sg[size_t(n * C + c)] / count;
            m2[gi] += gamma[c] * sgx[size_t(n * C + c)] / count;
        }
    for (int64_t c = 0; c < C; ++c) {
        double a = 0, b = 0;
        for (int64_t n = 0; n < N; ++n) {
            a += sgx[size_t(n * C + c)];
            b += sg[size_t(n * C + c)];
        }
        dgamma[c] = float(a);
        dbeta[c] = float(b);
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const size_t gi = size_t(n * groups + c / cpg);
            const double mean = g_mean[gi], rstd = g_rstd[gi];
            const int64_t off = L.offset(n, c, 0);
            for (int64_t i = 0; i < S; ++i) {
                const int64_t o = off + i * L.stride_s;
                const double g = y[o] > 0.f ? dy[o] : 0.0;
                const double xhat = (x[o] - mean) * rstd;
                dx[o] = float(rstd * (gamma[c] * g - m1[gi] - xhat * m2[gi]));
            }
        }
}

}  // namespace unet
