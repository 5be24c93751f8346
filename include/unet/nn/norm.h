// Normalization followed by ReLU, fused: the "norm + ReLU" half of every UNet conv block.
//
//   none   plain ReLU on oneDNN (the UNet fuses it into the convolution instead; this path exists
//          so a standalone block is still correct).
//   batch  oneDNN batch normalization with scale, shift and fuse_norm_relu (the ReLU mask is
//          kept in the primitive's workspace). Training normalizes with batch statistics
//          (biased variance) and updates running_mean / running_var with momentum 0.1 and the
//          unbiased variance, as PyTorch does; eval uses the running statistics.
//   group  group normalization (not in oneDNN 2.6): our own OpenMP kernel over any dense layout
//          (ChannelLayout), statistics in double, ReLU fused, backward masks by dst > 0.
//
// Parameters "<name>.weight" (gamma) and "<name>.bias" (beta), C each; batch norm also registers
// buffers "<name>.running_mean" and "<name>.running_var". Same names as PyTorch.
// dst has src's layout. backward() may run in place (diff_src == diff_dst).
#pragma once

#include <memory>
#include <string>

#include "unet/core/dnnl_util.h"
#include "unet/core/param_store.h"
#include "unet/nn/unet_config.h"

namespace unet {


class NormRelu {
   public:
    static void register_params(ParamStore& store, const std::string& name, int64_t channels, NormKind kind);

    NormRelu(const memory::desc& src_desc, NormKind kind, int64_t groups, ParamStore& store,
             const std::string& name);
    ~NormRelu();
    NormRelu(const NormRelu&) = delete;
    NormRelu& operator=(const NormRelu&) = delete;

    const memory::desc& dst_desc() const;
    void forward(const memory& src, const memory& dst, bool training);
    void backward(const memory& src, const memory& dst, const memory& diff_dst, const memory& diff_src);

    static constexpr float kEpsilon = 1e-5f;
    static constexpr float kMomentum = 0.1f;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace unet
