// Inverted dropout: in training each element is kept with probability 1 - p and scaled by
// 1 / (1 - p); in eval it is the identity. The mask is a counter-based hash of
// (seed, step, element index) — nothing is stored, backward recomputes it, and the result does
// not depend on the number of threads. Works on any layout (element-wise over the buffer).
#pragma once

#include <cstdint>

#include "unet/core/dnnl_util.h"

namespace unet {

class Dropout {
   public:
    // `stream_id` separates the masks of different dropout layers with the same seed.
    Dropout(const memory::desc& desc, float rate, uint64_t seed, uint64_t stream_id);
    const memory::desc& dst_desc() const { return md_; }
    float rate() const { return rate_; }
    // `step` selects a fresh mask per training step. src and dst may be the same memory.
    void forward(const memory& src, const memory& dst, uint64_t step, bool training);
    // Uses the mask of the last training forward; diff_src may equal diff_dst.
    void backward(const memory& diff_dst, const memory& diff_src);

   private:
    void apply(const float* in, float* out, uint64_t step) const;
    memory::desc md_;
    float rate_;
    uint64_t seed_, stream_id_, last_step_ = 0;
};

}  // namespace unet
