// Pictures of one sample for TensorBoard's Images page: one axial slice (for 3D the slice with the
// most tumour in the ground truth, the middle one when there is none) as
//   input       channel 0 in grey, windowed to its [1%, 99%] range over non-zero voxels (0 = black)
//   truth       the ground-truth mask, white on black
//   prediction  the predicted probability, black (0) to white (1)
//   overlay     the input with the truth in red and the thresholded (>= 0.5) prediction in green;
//               where they agree the voxel is yellow
// Slices smaller than 128 pixels are enlarged by a whole factor (nearest neighbour) so they stay
// readable in the browser.
#pragma once

#include <cstdint>
#include <vector>

#include "unet/core/dims.h"
#include "unet/log/image_writers.h"

namespace unet {

// Index of the axial slice (first spatial axis of a 3D sample) with the most mask voxels >= 0.5;
// 0 for 2D samples. `spatial` is H,W or D,H,W.
int64_t slice_with_most_tumour(const float* mask, const Dims& spatial);

class SamplePictures {
   public:
    // `images`: channels x spatial, `mask`: spatial (one sample, plain layout). Both are copied.
    SamplePictures(const float* images, int64_t channels, const float* mask, const Dims& spatial);
    int64_t slice() const { return z_; }
    int scale() const { return scale_; }
    RgbImage input() const;
    RgbImage truth() const;
    // `probabilities`: the model's output for this sample (spatial floats in [0, 1]).
    RgbImage prediction(const float* probabilities) const;
    RgbImage overlay(const float* probabilities) const;

   private:
    template <class Shade>
    RgbImage draw(Shade shade) const;
    uint8_t grey(int64_t i) const;

    int64_t H_ = 0, W_ = 0, z_ = 0, plane_ = 0;
    int scale_ = 1;
    std::vector<float> input_, mask_;  // the chosen slice of channel 0 and of the mask
    float lo_ = 0, hi_ = 1;
};

}  // namespace unet
