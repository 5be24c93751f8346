// A batch of samples in memory, as every batch source hands them out (the HDF5 Loader, the
// generated toy set): images N x C x spatial and masks N x 1 x spatial, plain layout.
#pragma once

#include <cstdint>
#include <vector>

#include "unet/core/dims.h"

namespace unet {

struct Batch {
    int64_t n = 0, channels = 0;
    Dims spatial;
    std::vector<float> images;     // n x channels x spatial
    std::vector<float> masks;      // n x 1 x spatial
    std::vector<int64_t> indices;  // sample index in the split, per sample
    int64_t voxels() const { return product(spatial); }
};

}  // namespace unet
