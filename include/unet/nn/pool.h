// Max pooling, kernel 2 and stride 2, on oneDNN with a workspace that remembers the argmax, so
// backward routes each gradient to exactly the element forward picked (ties go where oneDNN's
// forward sent them, never split).
//
// src N x C x [D x] H x W (each spatial size even); dst N x C x [D/2 x] H/2 x W/2, in src's layout.
// backward() overwrites diff_src (same layout as src) from diff_dst (layout of dst).
#pragma once

#include "unet/core/dnnl_util.h"

namespace unet {

class MaxPool {
   public:
    explicit MaxPool(const memory::desc& src_desc);
    const memory::desc& dst_desc() const { return dst_md_; }
    void forward(const memory& src, const memory& dst);
    void backward(const memory& diff_dst, const memory& diff_src);

   private:
    memory::desc src_md_, dst_md_;
    dnnl::pooling_forward fwd_;
    dnnl::pooling_backward bwd_;
    memory workspace_;
};

}  // namespace unet
