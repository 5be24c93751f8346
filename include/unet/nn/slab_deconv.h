// An inference plan's up-sampling (transposed convolution, kernel 2, stride 2), run slab by slab
// along the first spatial axis, as a 1x1 convolution and a depth-to-space reorder.
//
// oneDNN 2.6 runs this deconvolution on AVX2 as a gemm and a col2im whose scratchpad is as large
// as its output plus its input (534 MB at the level 0 of a 152 x 240 x 240 window with 8
// filters), about 0.4 s there. With kernel 2 and stride 2 the taps do not overlap: output voxel
// (2z + a, 2y + b, 2x + c) is tap (a, b, c) of input voxel (z, y, x) alone. So a 1x1 convolution
// to 8 x OC channels computes every tap of a voxel at once (oneDNN's jit 1x1 kernel), and a reorder
// between two strided views moves each tap to its place (0.11 s for the same layer). Output slab
// [2 z0, 2 z1) depends on input slab [z0, z1) only, and in channels-last memory both are
// contiguous, so both primitives are built for a slab and run over the tensor in pieces: the
// taps' buffer is a slab's size and stays in cache.
#pragma once

#include <memory>

#include "unet/nn/conv.h"

namespace unet {

class SlabDeconv {
   public:
    // `spec` must be a forward-only transposed convolution whose weights are registered in `store`
    // as `name` (ConvLayer::register_params). Slabs are the largest whole division of the first
    // spatial axis whose taps' buffer fits in `max_slab_bytes` (at least one plane). A src that is
    // not channels-last runs whole, as oneDNN's deconvolution.
    SlabDeconv(const memory::desc& src_desc, const ConvSpec& spec, ParamStore& store, const std::string& name,
               size_t max_slab_bytes);
    ~SlabDeconv();

    const memory::desc& dst_desc() const { return dst_md_; }
    int64_t slab_planes() const { return slab_; }  // input planes per slab (whole: the axis' size)
    int reorders_in_use() const;
    void forward(const memory& src, const memory& dst);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    memory::desc dst_md_;
    int64_t slab_ = 1;
};

}  // namespace unet
