// A multi-channel image volume in memory, channels first: C x D x H x W floats, C order
// (W fastest). 2D images are volumes with D = 1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

struct Volume {
    int64_t channels = 0, depth = 0, height = 0, width = 0;
    std::vector<float> data;  // channels * depth * height * width

    int64_t voxels() const { return depth * height * width; }
    float* channel(int64_t c) { return data.data() + c * voxels(); }
    const float* channel(int64_t c) const { return data.data() + c * voxels(); }
    void resize(int64_t c, int64_t d, int64_t h, int64_t w) {
        channels = c, depth = d, height = h, width = w;
        data.assign(size_t(c * d * h * w), 0.f);
    }
    std::string shape_string() const;  // "4x155x240x240"
};

}  // namespace unet
