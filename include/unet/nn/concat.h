// Channel concatenation for UNet skip connections: dst = [a, b] along C.
//
// When a, b and dst share a layout in which a tensor is rows of channel runs (plain nc[d]hw or
// channel-blocked nCdhw16c with channel counts that are multiples of the block: one row per
// sample; channels-last: one row per voxel), dst's rows are a's run followed by b's run, and
// forward and backward are one memcpy (or add) per row and input. Otherwise forward is oneDNN's concat primitive, and backward reorders sub-memory views
// of diff_dst.
//
// Backward needs no gradient math: the gradient of a is the first C_a channels of diff_dst, that
// of b the rest. With `accumulate` it is added into the caller's buffer (the skip tensor also
// receives the max-pool's gradient).
#pragma once

#include "unet/core/dnnl_util.h"

namespace unet {

class Concat {
   public:
    Concat(const memory::desc& a_desc, const memory::desc& b_desc);
    const memory::desc& dst_desc() const { return dst_md_; }
    bool uses_contiguous_runs() const { return contiguous_; }
    void forward(const memory& a, const memory& b, const memory& dst);
    // Gradient of input `which` (0 = a, 1 = b): written to diff (layout of that input), or
    // added to it when accumulate is true.
    void backward(const memory& diff_dst, int which, const memory& diff, bool accumulate);

   private:
    memory::desc in_md_[2], dst_md_;
    dnnl::concat fwd_;
    dnnl::reorder split_[2], split_add_[2];
    memory::desc view_md_[2];
    bool contiguous_ = false;
    int64_t rows_ = 0;
    int64_t run_[2] = {0, 0};     // floats per row of each input
    int64_t offset_[2] = {0, 0};  // start of each input's run inside a dst row
    int64_t dst_row_ = 0;         // floats per dst row
};

}  // namespace unet
