// Pictures of one sample for TensorBoard's Images page: one axial slice (for 3D the slice with the
// most tumour in the ground truth, the middle one when there is none) as
//   input       channel 0 in grey, windowed to its [1%, 99%] range over non-zero voxels (0 = black)
//   truth       the ground-truth mask, white on black
//   prediction  the predicted probability, black (0) to white (1)
//   overlay     the input with the truth in red and the thresholded (>= 0.5) prediction in green;
//               where they agree the voxel is yellow
// A model of several regions (WT, TC, ET: `region_names`) shows each region in its colour, as BraTS
// viewers colour the labels they stand for: WT green (oedema), TC red (necrotic core), ET yellow
// (enhancing), any other region blue; a voxel takes the colour of the smallest region it is in.
//   truth       the true regions on black
//   prediction  the thresholded predicted regions on black
//   overlay     the input with the predicted regions tinted in their colours
// Slices smaller than 128 pixels are enlarged by a whole factor (nearest neighbour) so they stay
// readable in the browser.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "unet/core/dims.h"
#include "unet/log/image_writers.h"

namespace unet {

// Index of the axial slice (first spatial axis of a 3D sample) with the most mask voxels >= 0.5;
// 0 for 2D samples. `spatial` is H,W or D,H,W.
int64_t slice_with_most_tumour(const float* mask, const Dims& spatial);

class SamplePictures {
   public:
    // `images`: channels x spatial, `masks`: region_names.size() x spatial (one sample, plain
    // layout; one region when the list is empty). Both are copied.
    SamplePictures(const float* images, int64_t channels, const float* masks, const Dims& spatial,
                   const std::vector<std::string>& region_names = {});
    int64_t slice() const { return z_; }
    int scale() const { return scale_; }
    RgbImage input() const;
    RgbImage truth() const;
    // `probabilities`: the model's output for this sample (regions x spatial floats in [0, 1]).
    RgbImage prediction(const float* probabilities) const;
    RgbImage overlay(const float* probabilities) const;

   private:
    template <class Shade>
    RgbImage draw(Shade shade) const;
    uint8_t grey(int64_t i) const;
    // The smallest region (in the chosen slice of the truth) that voxel i of `slices` is in, -1: none.
    int region_at(const float* slices, int64_t i) const;
    RgbImage regions_picture(const float* slices, bool over_input) const;

    int64_t H_ = 0, W_ = 0, z_ = 0, plane_ = 0, volume_ = 0;
    int scale_ = 1;
    std::vector<float> input_, mask_;  // the chosen slice of channel 0 and of each region's mask
    std::vector<int> paint_order_;     // regions by decreasing truth area in the slice
    std::vector<std::array<uint8_t, 3>> colours_;
    float lo_ = 0, hi_ = 1;
};

}  // namespace unet
