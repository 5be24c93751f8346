#include "unet/nn/depth_stacked_conv.h"

#include <algorithm>
#include <unordered_map>

namespace unet {

using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

constexpr size_t kAlign = 64;
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// The 2D convolution of `planes` channels-last planes into k * OC stacked tap channels (no bias).
struct PlaneConv {
    memory::desc src_md, dst_md, scratchpad_md;
    dnnl::convolution_forward prim;
    memory::desc weights_md;  // the primitive's layout
    std::string impl;
};

PlaneConv plane_conv(int64_t planes, int64_t ic, int64_t stacked_oc, int64_t h, int64_t w, int64_t k) {
    auto& ctx = DnnlContext::get();
    PlaneConv c;
    c.src_md = f32_desc({planes, ic, h, w}, Tag::nhwc);
    c.dst_md = f32_desc({planes, stacked_oc, h, w}, Tag::nhwc);
    const dnnl::convolution_forward::primitive_desc pd(
        dnnl::convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, c.src_md,
                                        any_desc({stacked_oc, ic, k, k}), c.dst_md, {1, 1}, {k / 2, k / 2},
                                        {k / 2, k / 2}),
        user_scratchpad_attr(), ctx.engine);
    c.impl = pd.impl_info_str();
    if (c.impl.find("jit:avx2") != 0 || pd.src_desc() != c.src_md || pd.dst_desc() != c.dst_md) {
        c.impl.clear();
        return c;
    }
    c.prim = dnnl::convolution_forward(pd);
    c.weights_md = pd.weights_desc();
    c.scratchpad_md = pd.scratchpad_desc();
    return c;
}

}  // namespace

struct DepthStackedConv::Impl {
    int64_t n = 0, ic = 0, oc = 0, d = 0, h = 0, w = 0, k = 0, planes = 0;
    PlaneConv slab, tail;  // `planes` planes per call; the last slab's d % planes (when not 0)
    memory stacked_plain, stacked_weights;  // k * OC x IC x k x k: plain (oihw), the primitive's
    size_t slab_bytes = 0, plane_conv_scratchpad_bytes = 0;

    int64_t stacked_oc() const { return k * oc; }
    void stack_weights(const float* weight, int64_t weight_row);
    void add_plane(const float* y, int64_t p, float* sample_out, const float* bias, bool accumulate, bool relu) const;
};

std::unique_ptr<DepthStackedConv> DepthStackedConv::make(const memory::desc& src_md, const memory::desc& dst_md,
                                                         int64_t kernel) {
    if (src_md.data.ndims != 5 || kernel < 3 || kernel > 15 || kernel % 2 == 0 || !is_channels_last(src_md) ||
        !is_channels_last(dst_md))
        return nullptr;
    const Dims s = src_md.dims(), t = dst_md.dims();
    if (t[0] != s[0] || t[2] != s[2] || t[3] != s[3] || t[4] != s[4] || t[1] > kMaxOutputChannels) return nullptr;
    std::unique_ptr<DepthStackedConv> conv(new DepthStackedConv);
    Impl& m = *(conv->impl_ = std::make_unique<Impl>());
    m.n = s[0], m.ic = s[1], m.oc = t[1], m.d = s[2], m.h = s[3], m.w = s[4], m.k = kernel;
    m.planes = std::min(m.d, kPlanesPerCall);
    m.slab = plane_conv(m.planes, m.ic, m.stacked_oc(), m.h, m.w, kernel);
    if (m.slab.impl.empty()) return nullptr;
    size_t conv_scratchpad = m.slab.scratchpad_md.get_size();
    if (m.d % m.planes != 0) {
        m.tail = plane_conv(m.d % m.planes, m.ic, m.stacked_oc(), m.h, m.w, kernel);
        if (m.tail.impl.empty()) return nullptr;
        conv_scratchpad = std::max(conv_scratchpad, m.tail.scratchpad_md.get_size());
    }
    auto& ctx = DnnlContext::get();
    m.stacked_plain = memory(f32_desc({m.stacked_oc(), m.ic, kernel, kernel}, Tag::oihw), ctx.engine);
    m.stacked_weights = m.slab.weights_md == m.stacked_plain.get_desc() ? m.stacked_plain
                                                                        : memory(m.slab.weights_md, ctx.engine);
    if (m.tail.prim && m.tail.weights_md != m.slab.weights_md) return nullptr;  // (one weight layout for both)
    m.slab_bytes = aligned(size_t(m.planes * m.h * m.w * m.stacked_oc()) * sizeof(float));
    m.plane_conv_scratchpad_bytes = conv_scratchpad;
    return conv;
}

DepthStackedConv::~DepthStackedConv() = default;

std::string DepthStackedConv::impl() const { return impl_->slab.impl + " by stacked depth taps"; }

size_t DepthStackedConv::scratchpad_bytes() const { return impl_->slab_bytes + impl_->plane_conv_scratchpad_bytes; }

void DepthStackedConv::Impl::stack_weights(const float* weight, int64_t weight_row) {
    // stacked[kd * OC + o][i][kh][kw] = weight[o][i][kd][kh][kw]; a few thousand floats, redone on
    // every forward because the weights move between calls in training's validation.
    float* out = static_cast<float*>(stacked_plain.get_data_handle());
    const int64_t plane = k * k, taps = k * plane;
    for (int64_t kd = 0; kd < k; ++kd)
        for (int64_t o = 0; o < oc; ++o)
            for (int64_t i = 0; i < ic; ++i)
                std::copy_n(weight + o * weight_row + i * taps + kd * plane, plane,
                            out + ((kd * oc + o) * ic + i) * plane);
    if (stacked_weights.get_data_handle() != stacked_plain.get_data_handle()) reorder_now(stacked_plain, stacked_weights);
}

namespace {

// Adds the k tap blocks of one plane's 2D result y (pixels x k*OC) into their output planes:
// block kd into out[kd] (nullptr: a plane outside the sample). An output plane's first tap starts
// from the bias (or from what it holds, with accumulate); after its last, the ReLU. One pass over
// y while it is still in cache, and the (at most k) output planes it touches are too: summing per
// output plane instead read each y plane k times from memory and cost more than the convolution
// saved. OC known at compile time, so that the channel loops become whole vectors.
template <int OC>
void add_taps(const float* y, float* const* out, const bool* first, const bool* last, int64_t k, int64_t pixels,
              const float* bias, bool accumulate, bool relu) {
    const int64_t stride = k * OC;
#pragma omp parallel for schedule(static)
    for (int64_t px = 0; px < pixels; ++px) {
        for (int64_t kd = 0; kd < k; ++kd) {
            if (!out[kd]) continue;
            float* o = out[kd] + px * OC;
            const float* v = y + px * stride + kd * OC;
            float acc[OC];
            for (int c = 0; c < OC; ++c) acc[c] = (first[kd] ? (accumulate ? o[c] : bias[c]) : o[c]) + v[c];
            if (relu && last[kd])
                for (int c = 0; c < OC; ++c) acc[c] = std::max(acc[c], 0.f);
            for (int c = 0; c < OC; ++c) o[c] = acc[c];
        }
    }
}

template <int OC = DepthStackedConv::kMaxOutputChannels>
void add_taps_of(int64_t oc, const float* y, float* const* out, const bool* first, const bool* last, int64_t k,
                 int64_t pixels, const float* bias, bool accumulate, bool relu) {
    if constexpr (OC > 1)
        if (oc < OC) return add_taps_of<OC - 1>(oc, y, out, first, last, k, pixels, bias, accumulate, relu);
    add_taps<OC>(y, out, first, last, k, pixels, bias, accumulate, relu);
}

}  // namespace

// Plane p's 2D result into the output planes of one sample: tap kd belongs to plane z = p - kd + k/2,
// which takes taps from planes max(0, z - k/2) (its first) to min(d - 1, z + k/2) (its last).
void DepthStackedConv::Impl::add_plane(const float* y, int64_t p, float* sample_out, const float* bias,
                                       bool accumulate, bool relu) const {
    const int64_t r = k / 2, pixels = h * w;
    float* out[16];
    bool first[16], last[16];
    for (int64_t kd = 0; kd < k; ++kd) {
        const int64_t z = p - kd + r;
        const bool inside = z >= 0 && z < d;
        out[kd] = inside ? sample_out + z * pixels * oc : nullptr;
        first[kd] = p == std::max<int64_t>(0, z - r);
        last[kd] = p == std::min<int64_t>(d - 1, z + r);
    }
    add_taps_of(oc, y, out, first, last, k, pixels, bias, accumulate, relu);
}

void DepthStackedConv::forward(const memory& src, const memory& dst, const float* weight, int64_t weight_row,
                               const float* bias, bool accumulate, bool relu) {
    Impl& m = *impl_;
    auto& ctx = DnnlContext::get();
    m.stack_weights(weight, weight_row);
    const memory scratch = ctx.scratchpad(memory::desc({int64_t(scratchpad_bytes())}, memory::data_type::u8, Tag::x));
    uint8_t* base = static_cast<uint8_t*>(scratch.get_data_handle());
    float* slab_result = reinterpret_cast<float*>(base);
    void* conv_scratchpad = base + m.slab_bytes;
    const float* x = static_cast<const float*>(src.get_data_handle());
    float* y = static_cast<float*>(dst.get_data_handle());
    const int64_t pixels = m.h * m.w, x_plane = pixels * m.ic, y_plane = pixels * m.stacked_oc();
    for (int64_t n = 0; n < m.n; ++n) {
        float* sample_out = y + n * m.d * pixels * m.oc;
        for (int64_t first = 0; first < m.d; first += m.planes) {
            const int64_t count = std::min(m.planes, m.d - first);
            PlaneConv& c = count == m.planes ? m.slab : m.tail;
            c.prim.execute(ctx.stream,
                           {{DNNL_ARG_SRC, memory(c.src_md, ctx.engine, const_cast<float*>(x + (n * m.d + first) * x_plane))},
                            {DNNL_ARG_WEIGHTS, m.stacked_weights},
                            {DNNL_ARG_DST, memory(c.dst_md, ctx.engine, slab_result)},
                            {DNNL_ARG_SCRATCHPAD, memory(c.scratchpad_md, ctx.engine, conv_scratchpad)}});
            for (int64_t i = 0; i < count; ++i)
                m.add_plane(slab_result + i * y_plane, first + i, sample_out, bias, accumulate, relu);
        }
    }
}

}  // namespace unet
