#include "unet/nn/dropout.h"

#include <cstring>

#include "unet/core/check.h"
#include "unet/core/rng.h"

namespace unet {

Dropout::Dropout(const memory::desc& desc, float rate, uint64_t seed, uint64_t stream_id)
    : md_(desc), rate_(rate), seed_(seed), stream_id_(stream_id) {
    UNET_CHECK(rate >= 0.f && rate < 1.f, "dropout rate " << rate);
}

void Dropout::apply(const float* in, float* out, uint64_t step) const {
    const int64_t count = int64_t(md_.get_size() / sizeof(float));
    const float keep_scale = 1.f / (1.f - rate_);
    const uint64_t stream = stream_id_ * 0x100000000ull + step;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i)
        out[i] = counter_uniform(seed_, stream, uint64_t(i)) < rate_ ? 0.f : in[i] * keep_scale;
}

void Dropout::forward(const memory& src, const memory& dst, uint64_t step, bool training) {
    DnnlContext::get().stream.wait();
    const float* in = static_cast<const float*>(src.get_data_handle());
    float* out = static_cast<float*>(dst.get_data_handle());
    if (!training || rate_ == 0.f) {
        if (in != out) std::memcpy(out, in, md_.get_size());
        return;
    }
    last_step_ = step;
    apply(in, out, step);
}

void Dropout::backward(const memory& diff_dst, const memory& diff_src) {
    DnnlContext::get().stream.wait();
    const float* in = static_cast<const float*>(diff_dst.get_data_handle());
    float* out = static_cast<float*>(diff_src.get_data_handle());
    if (rate_ == 0.f) {
        if (in != out) std::memcpy(out, in, md_.get_size());
        return;
    }
    apply(in, out, last_step_);
}

}  // namespace unet
