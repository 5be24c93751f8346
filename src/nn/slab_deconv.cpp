#include "unet/nn/slab_deconv.h"

#include "unet/core/aligned.h"
#include "unet/core/check.h"

namespace unet {

namespace {

// dims with the batch set to `n` and the first spatial axis to `planes`.
Dims with_slab(Dims dims, int64_t n, int64_t planes) {
    dims[0] = n;
    dims[2] = planes;
    return dims;
}

// The depth-to-space views of one slab: logical dims (spatial..., tap offsets..., OC). In the taps'
// buffer (channels-last, channel = tap * OC + oc) and in the output (channels-last, twice the size).
struct TapViews {
    memory::desc taps, out;
};

TapViews tap_views(const Dims& in_spatial, int64_t oc) {
    const int sd = int(in_spatial.size());
    Dims dims, taps_strides(size_t(2 * sd + 1)), out_strides(size_t(2 * sd + 1));
    for (int64_t n : in_spatial) dims.push_back(n);
    for (int i = 0; i < sd; ++i) dims.push_back(2);
    dims.push_back(oc);
    // taps buffer: spatial row-major, then the channels (tap-major, oc fastest)
    int64_t stride = 1;
    for (int i = 2 * sd; i >= 0; --i) {
        taps_strides[size_t(i)] = stride;
        stride *= dims[size_t(i)];
    }
    // output: voxel (2 z + a, ...) of an output twice the size, channels last
    int64_t out_stride = oc;
    out_strides[size_t(2 * sd)] = 1;
    for (int i = sd - 1; i >= 0; --i) {
        out_strides[size_t(sd + i)] = out_stride;       // the tap offset along axis i
        out_strides[size_t(i)] = 2 * out_stride;        // the input coordinate along axis i
        out_stride *= 2 * in_spatial[size_t(i)];
    }
    return {memory::desc(dims, memory::data_type::f32, taps_strides),
            memory::desc(dims, memory::data_type::f32, out_strides)};
}

}  // namespace

struct SlabDeconv::Impl {
    std::unique_ptr<ConvLayer> whole;  // oneDNN's deconvolution, where the src is not channels-last
    // The 1x1 convolution's parameters, refreshed from the deconvolution's before each forward
    // (an inference plan also serves validation during training, between optimizer steps).
    ParamStore taps_params;
    const float* weight = nullptr;  // the registered deconvolution's (PyTorch order IC, OC, 2...)
    const float* bias = nullptr;
    int64_t in_c = 0, out_c = 0, taps = 1;
    std::unique_ptr<ConvLayer> to_taps;
    memory::desc src_slab;
    TapViews views;
    dnnl::reorder place;
    AlignedBuffer tap_buffer;
    int64_t pieces = 1;
    size_t src_piece_bytes = 0, dst_piece_bytes = 0;

    void refresh_weights();
};

void SlabDeconv::Impl::refresh_weights() {
    float* w = taps_params.param(0);  // (taps x OC) x IC, 1x1
    float* b = taps_params.param(1);
    for (int64_t ic = 0; ic < in_c; ++ic)
        for (int64_t oc = 0; oc < out_c; ++oc)
            for (int64_t t = 0; t < taps; ++t) w[(t * out_c + oc) * in_c + ic] = weight[(ic * out_c + oc) * taps + t];
    for (int64_t t = 0; t < taps; ++t)
        for (int64_t oc = 0; oc < out_c; ++oc) b[t * out_c + oc] = bias[oc];
}

SlabDeconv::SlabDeconv(const memory::desc& src_desc, const ConvSpec& spec, ParamStore& store, const std::string& name,
                       size_t max_slab_bytes)
    : impl_(new Impl) {
    UNET_CHECK(spec.transposed && spec.forward_only && spec.kernel == 2,
               "SlabDeconv " << name << ": a forward-only transposed convolution of kernel 2");
    Impl& m = *impl_;
    const Dims src_dims = src_desc.dims();
    const int nd = src_desc.data.ndims, sd = nd - 2;
    const int64_t batch = src_dims[0], planes = src_dims[2];
    if (!is_channels_last(src_desc)) {
        m.whole = std::make_unique<ConvLayer>(src_desc, spec, store, name);
        dst_md_ = m.whole->dst_desc();
        slab_ = planes;
        return;
    }
    m.in_c = src_dims[1], m.out_c = spec.out_channels, m.taps = int64_t(1) << sd;
    m.weight = store.param(store.find(name + ".weight"));
    m.bias = store.param(store.find(name + ".bias"));
    ConvSpec taps_spec{m.taps * m.out_c, 1, PostOp::none, false, false, true};
    ConvLayer::register_params(m.taps_params, name, m.in_c, taps_spec, sd);
    m.taps_params.finalize();

    // One plane's taps are as large as two output planes.
    const int64_t plane = product(Dims(src_dims.begin() + 3, src_dims.end()));
    const size_t plane_bytes = size_t(plane * m.taps * m.out_c) * sizeof(float);
    slab_ = 1;
    for (int64_t s = planes; s > 1; --s)
        if (planes % s == 0 && plane_bytes * size_t(s) <= max_slab_bytes) {
            slab_ = s;
            break;
        }
    const Tag tag = channels_last_tag(nd);
    m.src_slab = f32_desc(with_slab(src_dims, 1, slab_), tag);
    m.to_taps = std::make_unique<ConvLayer>(m.src_slab, taps_spec, m.taps_params, name);
    UNET_CHECK(is_channels_last(m.to_taps->dst_desc()), "SlabDeconv " << name << ": the 1x1 convolution left channels-last");
    m.tap_buffer = AlignedBuffer(m.to_taps->dst_desc().get_size());
    Dims slab_spatial(src_dims.begin() + 2, src_dims.end());
    slab_spatial[0] = slab_;
    m.views = tap_views(slab_spatial, m.out_c);
    m.place = dnnl::reorder(memory(m.views.taps, DnnlContext::get().engine, DNNL_MEMORY_NONE),
                            memory(m.views.out, DnnlContext::get().engine, DNNL_MEMORY_NONE));
    m.pieces = batch * planes / slab_;
    m.src_piece_bytes = m.src_slab.get_size();
    m.dst_piece_bytes = m.src_piece_bytes / size_t(m.in_c) * size_t(m.out_c * m.taps);
    Dims dst_dims = src_dims;
    dst_dims[1] = m.out_c;
    for (int i = 2; i < nd; ++i) dst_dims[size_t(i)] *= 2;
    dst_md_ = f32_desc(dst_dims, tag);
}

SlabDeconv::~SlabDeconv() = default;

int SlabDeconv::reorders_in_use() const { return impl_->whole ? impl_->whole->reorders_in_use() : 0; }

void SlabDeconv::forward(const memory& src, const memory& dst) {
    Impl& m = *impl_;
    if (m.whole) {
        m.whole->forward(src, dst);
        return;
    }
    UNET_CHECK(src.get_desc().get_size() == m.src_piece_bytes * size_t(m.pieces), "SlabDeconv: src size");
    m.refresh_weights();
    auto& ctx = DnnlContext::get();
    auto* in = static_cast<char*>(src.get_data_handle());
    auto* out = static_cast<char*>(dst.get_data_handle());
    memory taps(m.to_taps->dst_desc(), ctx.engine, m.tap_buffer.data());
    memory taps_view(m.views.taps, ctx.engine, m.tap_buffer.data());
    // Batch items one after another, each slab by slab: in channels-last memory piece k starts
    // k slabs in, in the input and in the output alike.
    for (int64_t k = 0; k < m.pieces; ++k) {
        m.to_taps->forward(memory(m.src_slab, ctx.engine, in + size_t(k) * m.src_piece_bytes), taps);
        memory placed(m.views.out, ctx.engine, out + size_t(k) * m.dst_piece_bytes);
        m.place.execute(ctx.stream, taps_view, placed);
    }
}

}  // namespace unet
