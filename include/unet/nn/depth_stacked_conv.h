// The forward of a 3D convolution (k x k x k, stride 1, same padding) with few output channels on
// channels-last tensors, as 2D convolutions over depth planes with the k depth taps stacked as
// output channels.
//
// oneDNN 2.6.3's AVX2 direct kernel holds one 8-float vector of output channels per pixel, so with
// 8 or fewer output channels each broadcast input value feeds one FMA, and loads, not FMAs, bound
// it: 8 -> 8 channels over 152 x 240 x 240 runs at 57 GFLOP/s on a 2-core AVX2 machine whose
// 16 -> 16 layers run at 100. Stacking the taps gives the 2D kernel k x OC output channels
// (3 vectors for k = 3), each broadcast feeding k FMAs: the same 8 -> 8 layer as 2D 8 -> 24 over
// the 152 planes runs at 76-102. Output plane z is the sum of tap block kd of the 2D results of
// input planes z + kd - k/2 (within the sample), plus the bias (or the dst already there: the second
// part of a split convolution), then the ReLU. Each call convolves a band of rows of one plane (with
// its halo); the calls go down the depth one band at a time, and the band of output plane z is
// summed (one write per value) as soon as plane z + k/2 is convolved, from the last k results,
// which a ring on DnnlContext's shared scratchpad holds (k x kBandBytes: 1.5 MiB), in cache.
// Summing whole planes afterwards read each result k times from memory and cost more than the
// convolution saved; adding each result into its k output bands (three read-modify-writes per
// value) cost 10% of a seed3d case against 7% now.
// On AVX-512 (brgconv:avx512_core) the 3D kernel's vector is 16 channels, of which 8 output
// channels fill half; the stacked 24 fill 24 of 32. On a 2-core AVX-512 EPYC the four 8 -> 8 layers
// of a seed3d window went from 1199 to 802 ms and the 4 -> 8 layer from 222 to 100 ms.
// Used by ConvLayer for the forward (training and inference plans) where the 2D kernel is one of
// oneDNN's AVX2 or AVX-512 JIT kernels.
#pragma once

#include <memory>
#include <string>

#include "unet/core/dnnl_util.h"

namespace unet {

class DepthStackedConv {
   public:
    static constexpr int64_t kMaxOutputChannels = 8;
    // One call's 2D result (a band of rows of one plane) is at most about this size: k of them and
    // the output band stay in a core's cache (1 MB of L2 here), and the scratchpad stays small.
    static constexpr int64_t kBandBytes = int64_t(1) << 19;

    // For src N x IC x D x H x W and dst N x OC x D x H x W (both channels-last) and an odd kernel;
    // nullptr where it does not apply: not 3D, another layout, a kernel of 1 or over 15, more than
    // kMaxOutputChannels output channels, or a 2D kernel that is not one of oneDNN's AVX2 or
    // AVX-512 JIT kernels.
    // target_bytes: the size of one call's result (tests take small ones, for many bands).
    static std::unique_ptr<DepthStackedConv> make(const memory::desc& src_md, const memory::desc& dst_md,
                                                  int64_t kernel, int64_t target_bytes = kBandBytes);
    ~DepthStackedConv();

    // weight: the OC x IC x k x k x k block in PyTorch order whose rows (output channels) are
    // `weight_row` floats apart (a split convolution's part of a wider weight). bias: OC floats,
    // or nullptr with accumulate (dst += conv(src)). relu: applied to the result (the sum).
    void forward(const memory& src, const memory& dst, const float* weight, int64_t weight_row, const float* bias,
                 bool accumulate, bool relu);
    std::string impl() const;  // the 2D kernel's name, as "jit:avx2 by stacked depth taps"
    size_t scratchpad_bytes() const;

   private:
    DepthStackedConv() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace unet
