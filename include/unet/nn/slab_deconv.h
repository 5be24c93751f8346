// An inference plan's up-sampling (transposed convolution, kernel 2, stride 2) run slab by slab
// along the first spatial axis.
//
// oneDNN 2.6 runs this deconvolution on AVX2 as a gemm whose scratchpad is as large as its output
// plus its input (534 MB at the level 0 of a 152 x 240 x 240 window with 8 filters: more than any
// tensor around it). Output slab [2 z0, 2 z1) depends on input slab [z0, z1) only, and in
// channels-last memory both slabs are contiguous, so one primitive built for a slab runs over the
// whole tensor in pieces, each with a scratchpad of its size. Same arithmetic, same result.
#pragma once

#include <memory>

#include "unet/nn/conv.h"

namespace unet {

class SlabDeconv {
   public:
    // `spec` must be a forward-only transposed convolution. Slabs are the largest whole division of
    // the first spatial axis whose scratchpad fits in `max_scratchpad_bytes` (at least one plane);
    // a src that is not channels-last (or a slab primitive that picks another layout) runs whole.
    SlabDeconv(const memory::desc& src_desc, const ConvSpec& spec, ParamStore& store, const std::string& name,
               size_t max_scratchpad_bytes);
    ~SlabDeconv();

    const memory::desc& dst_desc() const { return dst_md_; }
    int64_t slab_planes() const { return slab_; }  // input planes per slab (the first axis, whole: its size)
    int reorders_in_use() const { return layer_->reorders_in_use(); }
    double forward_flops() const { return flops_; }
    void forward(const memory& src, const memory& dst);

   private:
    std::unique_ptr<ConvLayer> layer_;
    memory::desc dst_md_;
    int64_t batch_ = 1, planes_ = 1, slab_ = 1;
    size_t src_slab_bytes_ = 0, dst_slab_bytes_ = 0;
    double flops_ = 0;
};

}  // namespace unet
