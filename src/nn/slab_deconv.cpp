#include "unet/nn/slab_deconv.h"

#include "unet/core/check.h"

namespace unet {

namespace {

// dims with the batch set to `n` and the first spatial axis to `planes`.
Dims with_slab(Dims dims, int64_t n, int64_t planes) {
    dims[0] = n;
    dims[2] = planes;
    return dims;
}

bool is_channels_last(const memory::desc& md) {
    return md == f32_desc(md.dims(), channels_last_tag(md.data.ndims));
}

}  // namespace

SlabDeconv::SlabDeconv(const memory::desc& src_desc, const ConvSpec& spec, ParamStore& store, const std::string& name,
                       size_t max_scratchpad_bytes) {
    UNET_CHECK(spec.transposed && spec.forward_only, "SlabDeconv " << name << ": a forward-only transposed convolution");
    const Dims src_dims = src_desc.dims();
    batch_ = src_dims[0];
    planes_ = src_dims[2];
    const Tag tag = channels_last_tag(src_desc.data.ndims);
    auto layer_for = [&](int64_t planes) {
        return std::make_unique<ConvLayer>(f32_desc(with_slab(src_dims, 1, planes), tag), spec, store, name);
    };
    if (is_channels_last(src_desc)) {
        // The scratchpad grows with the slab (the gemm's columns are its voxels): measure one plane's.
        layer_ = layer_for(1);
        const size_t per_plane = layer_->forward_scratchpad_bytes();
        slab_ = 1;
        for (int64_t s = planes_; s > 1; --s)
            if (planes_ % s == 0 && per_plane * size_t(s) <= max_scratchpad_bytes) {
                slab_ = s;
                break;
            }
        if (slab_ > 1) layer_ = layer_for(slab_);
        if (is_channels_last(layer_->dst_desc())) {
            src_slab_bytes_ = src_desc.get_size() / size_t(batch_ * planes_) * size_t(slab_);
            dst_slab_bytes_ = layer_->dst_desc().get_size();
            const Dims d = layer_->dst_desc().dims();
            dst_md_ = f32_desc(with_slab(d, batch_, d[2] / slab_ * planes_), tag);
            flops_ = layer_->forward_flops() * double(batch_ * planes_ / slab_);
            return;
        }
    }
    layer_ = std::make_unique<ConvLayer>(src_desc, spec, store, name);  // whole, as the primitive likes it
    slab_ = planes_;
    src_slab_bytes_ = 0;
    dst_md_ = layer_->dst_desc();
    flops_ = layer_->forward_flops();
}

SlabDeconv::~SlabDeconv() = default;

void SlabDeconv::forward(const memory& src, const memory& dst) {
    if (src_slab_bytes_ == 0) {
        layer_->forward(src, dst);
        return;
    }
    auto& engine = DnnlContext::get().engine;
    auto* in = static_cast<char*>(src.get_data_handle());
    auto* out = static_cast<char*>(dst.get_data_handle());
    const memory::desc src_slab = f32_desc(with_slab(src.get_desc().dims(), 1, slab_), channels_last_tag(src.get_desc().data.ndims));
    UNET_CHECK(src.get_desc().get_size() == src_slab_bytes_ * size_t(batch_ * planes_ / slab_), "SlabDeconv: src size");
    // Batch items one after another, each slab by slab: in channels-last memory item n's slab k
    // starts (n * planes / slab + k) slabs in, in the input and in the output alike.
    for (int64_t k = 0; k < batch_ * planes_ / slab_; ++k)
        layer_->forward(memory(src_slab, engine, in + size_t(k) * src_slab_bytes_),
                        memory(layer_->dst_desc(), engine, out + size_t(k) * dst_slab_bytes_));
}

}  // namespace unet
