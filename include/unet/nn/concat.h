// Channel concatenation for UNet skip connections: dst = [a, b] along C.
//
// Forward is oneDNN's concat primitive (a copy). Backward needs no primitive: the gradient of a
// is the first C_a channels of diff_dst and the gradient of b the rest. backward() hands them
// out as sub-memory views of diff_dst and reorders each view into the caller's buffer; with
// `accumulate` the reorder adds into it (the skip tensor also receives the max-pool's gradient).
#pragma once

#include "unet/core/dnnl_util.h"

namespace unet {

class Concat {
   public:
    Concat(const memory::desc& a_desc, const memory::desc& b_desc);
    const memory::desc& dst_desc() const { return dst_md_; }
    void forward(const memory& a, const memory& b, const memory& dst);
    // Gradient of input `which` (0 = a, 1 = b): written to diff (layout of that input), or
    // added to it when accumulate is true.
    void backward(const memory& diff_dst, int which, const memory& diff, bool accumulate);

   private:
    memory::desc a_md_, b_md_, dst_md_;
    dnnl::concat fwd_;
    dnnl::reorder split_[2], split_add_[2];
    memory::desc view_md_[2];
};

}  // namespace unet
