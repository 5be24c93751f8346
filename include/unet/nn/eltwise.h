// Standalone ReLU and sigmoid on oneDNN's eltwise primitive, backward from dst. In the UNet
// both are fused into neighbours (ReLU into conv or norm, sigmoid into the 1x1 output conv);
// this layer is the unfused form, for networks that need it and for tests.
#pragma once

#include "unet/core/dnnl_util.h"

namespace unet {

enum class Activation { relu, sigmoid };

class Eltwise {
   public:
    Eltwise(const memory::desc& desc, Activation kind);
    const memory::desc& dst_desc() const { return md_; }
    void forward(const memory& src, const memory& dst);
    void backward(const memory& dst, const memory& diff_dst, const memory& diff_src);

   private:
    memory::desc md_;
    dnnl::eltwise_forward fwd_;
    dnnl::eltwise_backward bwd_;
};

}  // namespace unet
