// Image encoders: PNG (libpng) for single RGB images, to a file or to memory (TensorBoard image
// summaries), and animated GIF (giflib) for slice sweeps. Errors throw std::runtime_error naming
// the file; every libpng / giflib return is checked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

struct RgbImage {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;  // height x width x 3
    void resize(int w, int h) {
        width = w, height = h;
        rgb.assign(size_t(w) * size_t(h) * 3, 0);
    }
    uint8_t* at(int x, int y) { return rgb.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
};

std::vector<uint8_t> encode_png(const RgbImage& img);
void write_png(const std::string& path, const RgbImage& img);

// Frames must share one size. Colours are mapped onto a fixed 256-entry palette: 224 grey levels,
// 16 red-tinted and 16 green-tinted levels (enough for grey-scale scans with two overlays).
void write_gif(const std::string& path, const std::vector<RgbImage>& frames, int delay_centiseconds = 8);

}  // namespace unet
