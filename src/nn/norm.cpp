#include "unet/nn/norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
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
    // batch (with the ReLU fused in, or as relu_fwd / relu_bwd after it where fusing would cost 25x)
    bool relu_fused = true;
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
    const auto unfused = normalization_flags::use_scale | normalization_flags::use_shift;
    auto flags = unfused | normalization_flags::fuse_norm_relu;
    dnnl::batch_normalization_forward::desc fd(prop_kind::forward_training, md, kEpsilon, flags);
    dnnl::batch_normalization_forward::primitive_desc fpd(fd, ctx.engine);
    // oneDNN 2.6.3 fuses the ReLU into its channels-last kernels only when the channels fill whole
    // vectors (8 on AVX2); otherwise it falls back to bnorm_ref, 25-30x slower (4 channels of
    // 4 x 64 x 96 x 96, 2 threads: 460 + 624 ms forward + backward against 15 + 21 ms unfused,
    // bnorm_tbb_jit:sse41, plus the separate ReLU). So the ReLU goes separate where fusing costs that.
    if (is_fallback_kernel(fpd.impl_info_str())) {
        dnnl::batch_normalization_forward::primitive_desc plain(
            dnnl::batch_normalization_forward::desc(prop_kind::forward_training, md, kEpsilon, unfused), ctx.engine);
        if (!is_fallback_kernel(plain.impl_info_str())) {
            relu_fused = false;
            flags = unfused;
            fpd = plain;
            build_relu();
        }
    }
    bn_train = dnnl::batch_normalization_forward(fpd);
    ctx.note_scratchpad(fpd);
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
                if (!m.relu_fused) m.relu_fwd.execute(s, {{DNNL_ARG_SRC, dst}, {DNNL_ARG_DST, dst}});
                break;
            }
            m.bn_train.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCALE, m.scale},
                                   {DNNL_ARG_SHIFT, m.shift}, {DNNL_ARG_MEAN, m.mean},
                                   {DNNL_ARG_VARIANCE, m.var}, {DNNL_ARG_WORKSPACE, m.workspace}});
            if (!m.relu_fused) m.relu_fwd.execute(s, {{DNNL_ARG_SRC, dst}, {DNNL_ARG_DST, dst}});
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
            // An unfused ReLU's backward goes first, into diff_src, and the batch norm's backward
            // then runs there in place (oneDNN allows diff_src == diff_dst).
            if (!m.relu_fused)
                m.relu_bwd.execute(s, {{DNNL_ARG_DST, dst}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}});
            // oneDNN 2.6.3 requires SHIFT at execution for every batch-norm backward built with
            // use_shift, although the documentation does not list it.
            m.bn_bwd.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_MEAN, m.mean}, {DNNL_ARG_VARIANCE, m.var},
                                 {DNNL_ARG_DIFF_DST, m.relu_fused ? diff_dst : diff_src}, {DNNL_ARG_SCALE, m.scale}, {DNNL_ARG_SHIFT, m.shift},
                                 {DNNL_ARG_WORKSPACE, m.workspace}, {DNNL_ARG_DIFF_SRC, diff_src},
                                 {DNNL_ARG_DIFF_SCALE, m.dscale}, {DNNL_ARG_DIFF_SHIFT, m.dshift}});
            break;
        case NormKind::group:
            s.wait();
            m.group_backward(src, dst, diff_dst, diff_src);
            break;
    }
}

// Group norm, y = relu(gamma_c * (x - mean_g) * rstd_g + beta_c), statistics per (sample, group)
// over the group's channels and all spatial points.
//
// Memory is walked in its own order as "rows": runs of consecutive channels at one spatial point
// (all C channels in channels-last; one 16-channel block in blocked layouts; a single channel in
// plain ones), so the inner loops are contiguous and vectorize. Per-channel partial sums are
// kept per fixed chunk of rows and added in chunk order: results do not depend on the thread count.
namespace {

struct Rows {
    int64_t per_sample = 0;  // rows per sample
    int64_t width = 0;       // channels per row (the last row of a block may hold fewer)
    std::function<void(int64_t n, int64_t r, int64_t& offset, int64_t& c0, int64_t& count)> at;
};

Rows rows_of(const ChannelLayout& L) {
    Rows R;
    if (L.block == 1 && L.stride_cblock == 1 && L.stride_s == L.c) {  // channels-last
        R.per_sample = L.spatial;
        R.width = L.c;
        R.at = [L](int64_t n, int64_t r, int64_t& o, int64_t& c0, int64_t& k) {
            o = n * L.stride_n + r * L.stride_s, c0 = 0, k = L.c;
        };
    } else {  // blocked (block > 1, spatial inside a block) or plain (block 1, one channel per row)
        const int64_t blocks = (L.c + L.block - 1) / L.block;
        R.per_sample = blocks * L.spatial;
        R.width = L.block;
        R.at = [L](int64_t n, int64_t r, int64_t& o, int64_t& c0, int64_t& k) {
            const int64_t cb = r / L.spatial, s = r % L.spatial;
            c0 = cb * L.block;
            k = std::min(L.block, L.c - c0);
            o = n * L.stride_n + cb * L.stride_cblock + s * L.stride_s;
        };
    }
    return R;
}

constexpr int64_t kRowsPerChunk = 512;

// sum_a[n][c] += a(x, y, dy) and sum_b[n][c] += b(...) over every element, chunked.
template <class FA, class FB>
void channel_sums(const ChannelLayout& L, const Rows& R, FA fa, FB fb, std::vector<double>& sa, std::vector<double>& sb) {
    const int64_t chunks = (R.per_sample + kRowsPerChunk - 1) / kRowsPerChunk;
    std::vector<double> pa(size_t(L.n * chunks * L.c), 0.0), pb(pa.size(), 0.0);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < L.n; ++n)
        for (int64_t k = 0; k < chunks; ++k) {
            double* a = pa.data() + (n * chunks + k) * L.c;
            double* b = pb.data() + (n * chunks + k) * L.c;
            const int64_t r1 = std::min(R.per_sample, (k + 1) * kRowsPerChunk);
            for (int64_t r = k * kRowsPerChunk; r < r1; ++r) {
                int64_t o, c0, cnt;
                R.at(n, r, o, c0, cnt);
#pragma omp simd
                for (int64_t j = 0; j < cnt; ++j) {
                    a[c0 + j] += fa(o + j, c0 + j);
                    b[c0 + j] += fb(o + j, c0 + j);
                }
            }
        }
    sa.assign(size_t(L.n * L.c), 0.0);
    sb.assign(size_t(L.n * L.c), 0.0);
    for (int64_t n = 0; n < L.n; ++n)
        for (int64_t k = 0; k < chunks; ++k)
            for (int64_t c = 0; c < L.c; ++c) {
                sa[size_t(n * L.c + c)] += pa[size_t((n * chunks + k) * L.c + c)];
                sb[size_t(n * L.c + c)] += pb[size_t((n * chunks + k) * L.c + c)];
            }
}

// out[o] = f(o, index of (n, c)) over every element.
template <class F>
void for_each_element(const ChannelLayout& L, const Rows& R, F f) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < L.n; ++n)
        for (int64_t r = 0; r < R.per_sample; ++r) {
            int64_t o, c0, cnt;
            R.at(n, r, o, c0, cnt);
            const int64_t nc = n * L.c + c0;
#pragma omp simd
            for (int64_t j = 0; j < cnt; ++j) f(o + j, nc + j);
        }
}

}  // namespace

void NormRelu::Impl::group_forward(const memory& src_mem, const memory& dst_mem) {
    const ChannelLayout L(md);
    const Rows R = rows_of(L);
    const float* x = static_cast<const float*>(src_mem.get_data_handle());
    float* y = static_cast<float*>(dst_mem.get_data_handle());
    const int64_t N = L.n, C = L.c, cpg = C / groups;
    std::vector<double> sum, sumsq;
    channel_sums(
        L, R, [&](int64_t o, int64_t) { return double(x[o]); }, [&](int64_t o, int64_t) { return double(x[o]) * x[o]; },
        sum, sumsq);
    g_mean.assign(size_t(N * groups), 0);
    g_rstd.assign(size_t(N * groups), 0);
    const double count = double(cpg * L.spatial);
    std::vector<float> a(size_t(N * C)), b(size_t(N * C));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < groups; ++g) {
            double s1 = 0, s2 = 0;
            for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
                s1 += sum[size_t(n * C + c)];
                s2 += sumsq[size_t(n * C + c)];
            }
            const double mean = s1 / count, var = std::max(0.0, s2 / count - mean * mean);
            const double rstd = 1.0 / std::sqrt(var + double(kEpsilon));
            g_mean[size_t(n * groups + g)] = mean;
            g_rstd[size_t(n * groups + g)] = rstd;
            for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
                a[size_t(n * C + c)] = float(gamma[c] * rstd);
                b[size_t(n * C + c)] = float(beta[c] - gamma[c] * mean * rstd);
            }
        }
    for_each_element(L, R, [&](int64_t o, int64_t nc) {
        const float v = a[size_t(nc)] * x[o] + b[size_t(nc)];
        y[o] = v > 0.f ? v : 0.f;
    });
}

// Backward of relu(gamma * xhat + beta): with g = dy * [y > 0],
//   dgamma_c = sum g * xhat, dbeta_c = sum g,
//   dx = rstd * (gamma_c * g - mean_group(gamma * g) - xhat * mean_group(gamma * g * xhat)),
// which per (n, c) is dx = A g + B x + D with constants from two channel sums (of g and g x).
void NormRelu::Impl::group_backward(const memory& src_mem, const memory& dst_mem, const memory& diff_dst_mem,
                                    const memory& diff_src_mem) {
    const ChannelLayout L(md);
    const Rows R = rows_of(L);
    const float* x = static_cast<const float*>(src_mem.get_data_handle());
    const float* y = static_cast<const float*>(dst_mem.get_data_handle());
    const float* dy = static_cast<const float*>(diff_dst_mem.get_data_handle());
    float* dx = static_cast<float*>(diff_src_mem.get_data_handle());
    const int64_t N = L.n, C = L.c, cpg = C / groups;
    std::vector<double> sg, sgx_raw;
    channel_sums(
        L, R, [&](int64_t o, int64_t) { return y[o] > 0.f ? double(dy[o]) : 0.0; },
        [&](int64_t o, int64_t) { return y[o] > 0.f ? double(dy[o]) * x[o] : 0.0; }, sg, sgx_raw);
    // sum g * xhat = rstd * (sum g x - mean * sum g)
    std::vector<double> sgx(size_t(N * C));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const size_t gi = size_t(n * groups + c / cpg), i = size_t(n * C + c);
            sgx[i] = g_rstd[gi] * (sgx_raw[i] - g_mean[gi] * sg[i]);
        }
    std::vector<double> m1(size_t(N * groups), 0), m2(size_t(N * groups), 0);
    const double count = double(cpg * L.spatial);
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
    std::vector<float> A(size_t(N * C)), B(size_t(N * C)), D(size_t(N * C));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) {
            const size_t gi = size_t(n * groups + c / cpg), i = size_t(n * C + c);
            const double r = g_rstd[gi];
            A[i] = float(r * gamma[c]);
            B[i] = float(-r * r * m2[gi]);
            D[i] = float(-r * m1[gi] + r * r * m2[gi] * g_mean[gi]);
        }
    for_each_element(L, R, [&](int64_t o, int64_t nc) {
        const float g = y[o] > 0.f ? dy[o] : 0.f;
        dx[o] = A[size_t(nc)] * g + B[size_t(nc)] * x[o] + D[size_t(nc)];
    });
}

}  // namespace unet
