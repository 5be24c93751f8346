// The transforms unet_prepare applies to each MSD case, in this order (each a small function so
// tests can check them one by one):
//   1. crop_depth_distmis   D = 155 -> 152 by dropping slices [0, 2) and the last one, as DistMIS
//                           does (volume[..., 2:-1]); other depths are left alone
//   2. standardize_brain    per channel: (x - mean) / std over brain voxels (any channel non-zero);
//                           background stays exactly 0
//   3. check_labels         the label map stays MSD's 0-3 (regions are made from it when training,
//                           label_regions.h); any other value is refused
//   4. resize (optional)    trilinear (half-pixel centres, edges clamped) for images; label maps
//                           per nested region (resize_labels)
// 2D mode then cuts axial slices (one per depth index) and resizes each to slice_size^2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unet/data/volume.h"

namespace unet {

constexpr int64_t kMsdDepth = 155;
constexpr int64_t kDistmisDepth = 152;

void crop_depth_distmis(Volume& v);
void standardize_brain(Volume& image);
void check_labels(const Volume& label);  // throws std::runtime_error naming a value outside 0..3
Volume resize_linear(const Volume& v, int64_t depth, int64_t height, int64_t width);
// A label map 0-3 resized: each nested region {label >= l} (l = 1, 2, 3) resized linearly and
// thresholded at 0.5, so a binary 0/1 mask resizes exactly as before labels were kept.
Volume resize_labels(const Volume& label, int64_t depth, int64_t height, int64_t width);

// Axial slice z of every channel as a C x 1 x H x W volume.
Volume axial_slice(const Volume& v, int64_t z);

// Assigns each of n cases to split 0 (train), 1 (val) or 2 (test): a seeded shuffle, then the
// first round(f0 * n) cases train, the next round(f1 * n) val, the rest test.
std::vector<int> split_cases(int64_t n, const std::vector<double>& fractions, uint64_t seed);

// Parses "0.7,0.15,0.15": three non-negative numbers summing to 1 (within 1e-6), else
// UsageError naming --split.
std::vector<double> parse_split(const std::string& text);

}  // namespace unet
