// Parameter-free up-sampling by 2 in every spatial dim (Intel's --use_upsampling), on oneDNN's
// resampling primitive. Linear is bi-/tri-linear with half-pixel centres, i.e. PyTorch's
// interpolate(mode="bilinear"/"trilinear", align_corners=False); nearest copies each voxel 2^d
// times, like PyTorch's mode="nearest".
//
// src N x C x [D x] H x W; dst N x C x [2D x] 2H x 2W, in src's layout.
#pragma once

#include "unet/core/dnnl_util.h"

namespace unet {

enum class ResampleMode { nearest, linear };

class Resample {
   public:
    Resample(const memory::desc& src_desc, ResampleMode mode);
    const memory::desc& dst_desc() const { return dst_md_; }
    void forward(const memory& src, const memory& dst);
    void backward(const memory& diff_dst, const memory& diff_src);  // overwrites diff_src

   private:
    memory::desc dst_md_;
    dnnl::resampling_forward fwd_;
    dnnl::resampling_backward bwd_;
};

}  // namespace unet
