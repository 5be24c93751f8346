#include "unet/nn/depth_stacked_conv.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

namespace unet {

using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

constexpr size_t kAlign = 64;
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// The 2D convolution of one band of rows of a channels-last plane into k * OC stacked tap channels
// (no bias): `in_rows` input rows (the band and its halo inside the plane), zero rows of padding
// above and below where the halo leaves the plane.
struct BandConv {
    int64_t in_rows = 0, pad_top = 0, pad_bottom = 0;
    memory::desc src_md, dst_md, scratchpad_md;
    dnnl::convolution_forward prim;
    memory::desc weights_md;  // the primitive's layout
    std::string impl;
};

// oneDNN's JIT kernels for AVX2 and AVX-512, where the stacking was measured to pay (see the header).
bool vector_jit_kernel(const std::string& impl) {
    for (const char* prefix : {"jit:avx2", "jit:avx512", "brgconv:avx512"})
        if (impl.rfind(prefix, 0) == 0) return true;
    return false;
}

BandConv band_conv(int64_t in_rows, int64_t pad_top, int64_t pad_bottom, int64_t ic, int64_t stacked_oc, int64_t w,
                   int64_t k) {
    auto& ctx = DnnlContext::get();
    BandConv c;
    c.in_rows = in_rows, c.pad_top = pad_top, c.pad_bottom = pad_bottom;
    const int64_t out_rows = in_rows + pad_top + pad_bottom - k + 1;
    c.src_md = f32_desc({1, ic, in_rows, w}, Tag::nhwc);
    c.dst_md = f32_desc({1, stacked_oc, out_rows, w}, Tag::nhwc);
    const dnnl::convolution_forward::primitive_desc pd(
        dnnl::convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, c.src_md,
                                        any_desc({stacked_oc, ic, k, k}), c.dst_md, {1, 1}, {pad_top, k / 2},
                                        {pad_bottom, k / 2}),
        user_scratchpad_attr(), ctx.engine);
    c.impl = pd.impl_info_str();
    if (!vector_jit_kernel(c.impl) || pd.src_desc() != c.src_md || pd.dst_desc() != c.dst_md) {
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
    struct Band {
        int64_t first_row = 0, rows = 0;
        size_t conv = 0;  // index into convs
    };
    int64_t n = 0, ic = 0, oc = 0, d = 0, h = 0, w = 0, k = 0;
    std::vector<Band> bands;      // the rows of a plane, top to bottom
    std::vector<BandConv> convs;  // one per kind of band (top, middle, bottom, whole plane)
    memory stacked_plain, stacked_weights;  // k * OC x IC x k x k: plain (oihw), the primitives'
    size_t band_bytes = 0;  // a ring slot: the largest band's result, 64-byte aligned
    size_t conv_scratchpad_bytes = 0;

    int64_t stacked_oc() const { return k * oc; }
    int64_t slot_floats() const { return int64_t(band_bytes / sizeof(float)); }
    bool plan_bands(int64_t target_bytes);
    void stack_weights(const float* weight, int64_t weight_row);
    void finish_band(const float* ring, int64_t z, const Band& band, float* sample_out, const float* bias,
                     bool accumulate, bool relu) const;
};

bool DepthStackedConv::Impl::plan_bands(int64_t target_bytes) {
    const int64_t r = k / 2, row_bytes = w * stacked_oc() * int64_t(sizeof(float));
    const int64_t want = std::max<int64_t>(k, (target_bytes + row_bytes - 1) / row_bytes);
    const int64_t count = (h + want - 1) / want, rows = (h + count - 1) / count;  // bands of equal height
    for (int64_t top = 0; top < h; top += rows) {
        Band b;
        b.first_row = top;
        b.rows = std::min(rows, h - top);
        const int64_t in_first = std::max<int64_t>(0, top - r), in_end = std::min(h, top + b.rows + r);
        const int64_t pad_top = in_first - (top - r), pad_bottom = (top + b.rows + r) - in_end;
        size_t i = 0;
        while (i < convs.size() && !(convs[i].in_rows == in_end - in_first && convs[i].pad_top == pad_top &&
                                     convs[i].pad_bottom == pad_bottom))
            ++i;
        if (i == convs.size()) {
            convs.push_back(band_conv(in_end - in_first, pad_top, pad_bottom, ic, stacked_oc(), w, k));
            if (convs.back().impl.empty() || convs.back().weights_md != convs.front().weights_md) return false;
            conv_scratchpad_bytes = std::max(conv_scratchpad_bytes, convs.back().scratchpad_md.get_size());
        }
        b.conv = i;
        bands.push_back(b);
        band_bytes = std::max(band_bytes, aligned(size_t(b.rows * row_bytes)));
    }
    return true;
}

std::unique_ptr<DepthStackedConv> DepthStackedConv::make(const memory::desc& src_md, const memory::desc& dst_md,
                                                         int64_t kernel, int64_t target_bytes) {
    if (src_md.data.ndims != 5 || kernel < 3 || kernel > 15 || kernel % 2 == 0 || !is_channels_last(src_md) ||
        !is_channels_last(dst_md))
        return nullptr;
    const Dims s = src_md.dims(), t = dst_md.dims();
    if (t[0] != s[0] || t[2] != s[2] || t[3] != s[3] || t[4] != s[4] || t[1] > kMaxOutputChannels) return nullptr;
    std::unique_ptr<DepthStackedConv> conv(new DepthStackedConv);
    Impl& m = *(conv->impl_ = std::make_unique<Impl>());
    m.n = s[0], m.ic = s[1], m.oc = t[1], m.d = s[2], m.h = s[3], m.w = s[4], m.k = kernel;
    if (!m.plan_bands(target_bytes)) return nullptr;
    auto& ctx = DnnlContext::get();
    m.stacked_plain = memory(f32_desc({m.stacked_oc(), m.ic, kernel, kernel}, Tag::oihw), ctx.engine);
    m.stacked_weights = m.convs.front().weights_md == m.stacked_plain.get_desc()
                            ? m.stacked_plain
                            : memory(m.convs.front().weights_md, ctx.engine);
    return conv;
}

DepthStackedConv::~DepthStackedConv() = default;

std::string DepthStackedConv::impl() const { return impl_->convs.front().impl + " by stacked depth taps"; }

size_t DepthStackedConv::scratchpad_bytes() const { return size_t(impl_->k) * impl_->band_bytes + impl_->conv_scratchpad_bytes; }

void DepthStackedConv::Impl::stack_weights(const float* weight, int64_t weight_row) {
    // stacked[kd * OC + o][i][kh][kw] = weight[o][i][kd][kh][kw]; a few thousand floats, redone on
    // every forward because training moves the weights between calls.
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

// One band of an output plane: out[px][c] = (accumulate ? out[px][c] : bias[c]) + the sum over its
// `count` taps of tap[t][px * stride + c], then the ReLU; one write per output value. OC known at
// compile time, so that the channel loops become whole vectors.
template <int OC>
void sum_taps(float* out, const float* const* tap, int64_t count, int64_t stride, int64_t pixels, const float* bias,
              bool accumulate, bool relu) {
#pragma omp parallel for schedule(static)
    for (int64_t px = 0; px < pixels; ++px) {
        float* o = out + px * OC;
        float acc[OC];
        for (int c = 0; c < OC; ++c) acc[c] = accumulate ? o[c] : bias[c];
        for (int64_t t = 0; t < count; ++t)
            for (int c = 0; c < OC; ++c) acc[c] += tap[t][px * stride + c];
        if (relu)
            for (int c = 0; c < OC; ++c) acc[c] = std::max(acc[c], 0.f);
        for (int c = 0; c < OC; ++c) o[c] = acc[c];
    }
}

template <int OC = DepthStackedConv::kMaxOutputChannels>
void sum_taps_of(int64_t oc, float* out, const float* const* tap, int64_t count, int64_t stride, int64_t pixels,
                 const float* bias, bool accumulate, bool relu) {
    if constexpr (OC > 1)
        if (oc < OC) return sum_taps_of<OC - 1>(oc, out, tap, count, stride, pixels, bias, accumulate, relu);
    sum_taps<OC>(out, tap, count, stride, pixels, bias, accumulate, relu);
}

}  // namespace

// Output plane z's rows of `band` in one sample, from the band's 2D results of planes z - k/2 ..
// z + k/2 (those inside the sample) in the ring: plane q in slot q % k, tap block kd of plane
// z + kd - k/2.
void DepthStackedConv::Impl::finish_band(const float* ring, int64_t z, const Band& band, float* sample_out,
                                         const float* bias, bool accumulate, bool relu) const {
    const int64_t r = k / 2, slot = slot_floats();
    const float* tap[16];
    int64_t count = 0;
    for (int64_t kd = 0; kd < k; ++kd) {
        const int64_t q = z + kd - r;
        if (q >= 0 && q < d) tap[count++] = ring + (q % k) * slot + kd * oc;
    }
    sum_taps_of(oc, sample_out + (z * h + band.first_row) * w * oc, tap, count, stacked_oc(), band.rows * w, bias,
                accumulate, relu);
}

void DepthStackedConv::forward(const memory& src, const memory& dst, const float* weight, int64_t weight_row,
                               const float* bias, bool accumulate, bool relu) {
    Impl& m = *impl_;
    auto& ctx = DnnlContext::get();
    m.stack_weights(weight, weight_row);
    const memory scratch = ctx.scratchpad(memory::desc({int64_t(scratchpad_bytes())}, memory::data_type::u8, Tag::x));
    uint8_t* base = static_cast<uint8_t*>(scratch.get_data_handle());
    float* ring = reinterpret_cast<float*>(base);  // the last k band results: plane q in slot q % k
    void* conv_scratchpad = base + m.k * m.band_bytes;
    const float* x = static_cast<const float*>(src.get_data_handle());
    float* y = static_cast<float*>(dst.get_data_handle());
    const int64_t row = m.w * m.ic, r = m.k / 2, slot = m.slot_floats();
    for (int64_t n = 0; n < m.n; ++n) {
        float* sample_out = y + n * m.d * m.h * m.w * m.oc;
        // Band by band down the depth: output plane z is finished as soon as plane z + k/2 is
        // convolved, from the last k results, while they are in cache.
        for (const Impl::Band& band : m.bands) {
            BandConv& c = m.convs[band.conv];
            for (int64_t p = 0; p < m.d; ++p) {
                const float* plane = x + (n * m.d + p) * m.h * row;
                const float* in = plane + std::max<int64_t>(0, band.first_row - r) * row;
                c.prim.execute(ctx.stream, {{DNNL_ARG_SRC, memory(c.src_md, ctx.engine, const_cast<float*>(in))},
                                            {DNNL_ARG_WEIGHTS, m.stacked_weights},
                                            {DNNL_ARG_DST, memory(c.dst_md, ctx.engine, ring + (p % m.k) * slot)},
                                            {DNNL_ARG_SCRATCHPAD, memory(c.scratchpad_md, ctx.engine, conv_scratchpad)}});
                if (p >= r) m.finish_band(ring, p - r, band, sample_out, bias, accumulate, relu);
            }
            for (int64_t z = std::max<int64_t>(0, m.d - r); z < m.d; ++z)
                m.finish_band(ring, z, band, sample_out, bias, accumulate, relu);
        }
    }
}

}  // namespace unet
