// A small reader for NumPy .npy files (format versions 1.0, 2.0 and 3.0), as Intel's BraTS files
// (imgs_train.npy: N x H x W x C float32; msks_train.npy: N x H x W x 1) are stored.
// Supported: little-endian float32 ('<f4'), float64 ('<f8', rounded to float32), uint8 ('|u1',
// also spelled '<u1'), C order. Anything else (big-endian, Fortran order, other dtypes, bad magic,
// a truncated header or data) throws std::runtime_error with one line naming the file and what was
// found. Bytes after the data are ignored, as numpy does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

struct NpyArray {
    std::vector<int64_t> shape;
    std::string dtype;        // as in the header: "<f4", "<f8", "|u1"
    std::vector<float> data;  // converted to float32, C order
};

NpyArray read_npy(const std::string& path);

// Writes little-endian float32, C order, format 1.0 (tests and tools).
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);

}  // namespace unet
