// The weight gradient of a 3D convolution (k x k x k, stride 1, same padding) on channels-last
// tensors, as k two-dimensional weight gradients over depth slices.
//
// oneDNN 2.6.3 has no JIT kernel for a 3D convolution's backward-weights on AVX2 (AVX-512 has
// one): channels-last data takes its gemm kernel (im2col), blocked data its reference kernel,
// 3-4x the forward's time where there are few channels. The 2D kernel is JIT on AVX2, and a
// channels-last N x D x H x W x C tensor is, in memory, a channels-last batch of N * D planes. Tap plane kd of
// the weight gradient is the 2D weight gradient of the src planes z + kd - k/2 against the
// diff_dst planes z (those with both planes inside the same sample), so k 2D calls over shifted
// views of the same memory give the whole gradient. That wins where the layer has few output
// channels (8 -> 8 channels over 96^3, 2 samples: 110 ms against 318) and ties or loses from 32
// on, where it is not used. Each tap plane is reordered into its slice of the caller's plain
// (PyTorch order) gradient; samples after the first add to it.
#pragma once

#include <memory>
#include <string>

#include "unet/core/dnnl_util.h"

namespace unet {

class DepthSlicedWeightsGrad {
   public:
    // The gradient for a convolution with this src and dst (N x IC x D x H x W and N x OC x D x H x W)
    // and kernel; nullptr where it does not apply: not 3D, a layout other than channels-last, an
    // even kernel, more than kMaxOutputChannels output channels (where oneDNN's gemm is as fast),
    // or a 2D kernel that is not JIT either.
    static constexpr int64_t kMaxOutputChannels = 16;
    static std::unique_ptr<DepthSlicedWeightsGrad> make(const memory::desc& src_md, const memory::desc& dst_md,
                                                        int64_t kernel);
    ~DepthSlicedWeightsGrad();

    // diff_weights: OC x IC x k x k x k floats (PyTorch's order), overwritten; diff_bias: an OC
    // memory, overwritten. src and diff_dst as the descriptors given to make().
    void compute(const memory& src, const memory& diff_dst, float* diff_weights, const memory& diff_bias);
    std::string impl() const;  // the 2D kernel's name, as "jit:avx2 by depth slices"
    size_t scratchpad_bytes() const;

   private:
    DepthSlicedWeightsGrad() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace unet
