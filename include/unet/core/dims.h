// Tensor shapes: a list of sizes, outermost first (N, C, [D,] H, W; spatial H,W or D,H,W).
// The same type as oneDNN's memory::dims (a vector of int64_t), so shapes pass to primitives
// unchanged, but code that only needs a shape does not pull in oneDNN.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

using Dims = std::vector<int64_t>;

// The number of elements: the product of the sizes (1 for an empty shape).
int64_t product(const Dims& d);
// The sizes joined by `sep`: "64,64,64" (the form flags and settings take) or "64x64x64".
std::string dims_text(const Dims& d, const char* sep = ",");
// The sizes with their axis names, "D x H x W = 152 x 240 x 240" (3 sizes) or "H x W = 128 x 128".
std::string shape_text(const Dims& d);
// dims_text's inverse for "," : comma-separated positive integers ("64,64,64"); false (and `out`
// unspecified) for anything else, an empty text included.
bool parse_dims(const std::string& text, Dims* out);

}  // namespace unet
