// Convolution layers on oneDNN, forward_training and backward, 2D and 3D from one code path.
//
//   Conv      k x k (x k) convolution, stride 1, "same" padding (k odd), with bias.
//   Deconv    transposed convolution, kernel 2, stride 2, with bias (UNet up-sampling).
//
// Shapes: src N x IC x [D x] H x W; Conv dst N x OC x same spatial; Deconv dst N x OC x 2x spatial.
// Parameters live in a ParamStore (weights in PyTorch order: Conv O,I,k..; Deconv I,O,k..).
//
// An optional eltwise post-op (ReLU or sigmoid) is fused into the forward primitive, and its
// backward is computed from dst (use_dst_for_bwd), so the pre-activation never exists.
//
// Winograd (spec.winograd): fewer multiplications, slightly different rounding (relative
// differences around 1e-5..1e-4 against direct); its kernels are blocked-only, so a channels-last
// src is reordered into the layer's own buffer.
//
// Layouts: the primitive picks src/dst layouts itself (format_tag::any), except that tensors
// with fewer than 16 channels are channels-last (see conv_data_desc). If the src handed to
// forward() is in another layout, the layer reorders it into a buffer of its own (and reorders
// diff_src back); reorders_in_use() reports that, so the network can assert it only happens at
// its input.
//
// forward(): src and dst are memories with src_desc_given / dst_desc().
// A split part reads a strided view of the registered weight (no copy in the store) and must be
// forward-only.
//
// backward(): recomputes nothing; reads src and dst of the last forward(), CLOBBERS diff_dst
// (the post-op backward runs in place), overwrites diff_src (skipped when it is an empty memory,
// as for a network's first layer) and overwrites the layer's slices of the gradient buffer.
#pragma once

#include <memory>
#include <string>

#include "unet/core/dnnl_util.h"
#include "unet/core/param_store.h"

namespace unet {

enum class PostOp { none, relu, sigmoid };

struct ConvSpec {
    int64_t out_channels = 0;
    int64_t kernel = 3;       // Conv: odd kernel; Deconv: must be 2
    PostOp post_op = PostOp::none;
    bool transposed = false;  // Deconv (kernel 2, stride 2)
    bool winograd = false;    // use Winograd where oneDNN has it (2D, 3x3, 16-channel multiples)
    bool forward_only = false;  // no backward primitives (an inference plan); backward() must not run
    // A convolution split over its input channels: this layer convolves input channels
    // [in_offset, in_offset + src channels) of a weight registered with weight_in_channels inputs
    // (0: the src's channel count, the whole weight). An inference plan's decoder convolves the
    // up-sampled tensor and the skip this way instead of concatenating them first.
    int64_t weight_in_channels = 0;
    int64_t in_offset = 0;
    // dst += conv(src), without the bias (the second part of a split convolution; the post-op
    // applies to the sum). Forward only.
    bool accumulate = false;
    // The dst layout to use (zero: the primitive picks); the parts of a split convolution share one.
    memory::desc dst_layout{};
};

class ConvLayer {
   public:
    // Registers "<name>.weight" and "<name>.bias" in `store` (which must not be finalized yet).
    static void register_params(ParamStore& store, const std::string& name, int64_t in_channels,
                                const ConvSpec& spec, int spatial_dims);

    // Builds the primitives for one input descriptor (concrete) and batch size; the store must be
    // finalized. `need_diff_src` false skips backward-data (first layer of a network).
    ConvLayer(const memory::desc& src_desc, const ConvSpec& spec, ParamStore& store,
              const std::string& name, bool need_diff_src = true);
    ~ConvLayer();
    ConvLayer(const ConvLayer&) = delete;
    ConvLayer& operator=(const ConvLayer&) = delete;

    const memory::desc& dst_desc() const;
    bool reorders_in_use() const;  // true if src arrives in a layout the primitive did not pick
    bool uses_winograd() const;
    // The backward-weights kernel ("jit:avx2 by depth slices" where oneDNN's own 3D one is gemm or
    // reference code: DepthSlicedWeightsGrad); empty for a forward-only layer.
    const std::string& backward_weights_impl() const;
    // The forward kernel: oneDNN's, or "jit:avx2 by stacked depth taps" (DepthStackedConv; on
    // AVX-512 "brgconv:avx512_core by ...") for a 3D layer with few output channels.
    const std::string& forward_impl() const;
    double forward_flops() const;  // nominal: 2 * N * OC * IC * k^d * output (or input) voxels

    void forward(const memory& src, const memory& dst);
    // The forward's scratchpad size (on DnnlContext's shared buffer; oneDNN 2.6's deconvolution
    // needs one as large as its output: see slab_deconv.h).
    size_t forward_scratchpad_bytes() const;
    void backward(const memory& src, const memory& dst, const memory& diff_dst,
                  const memory& diff_src);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace unet
