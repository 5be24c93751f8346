// Sliding-window inference: a UNet trained on patches applied to a whole volume (or a 2D image)
// in windows of the training patch, the overlapping windows' probabilities blended.
//
// The rule is MONAI's sliding_window_inference (monai/inferers/utils.py, 1.3), so the two agree
// to float rounding (tests/reference/sliding_window_vs_monai.py):
//   - an axis shorter than the window is padded with zeros, split floor/ceil before/after (the
//     output is cropped back);
//   - window step per axis = int(roi * (1 - overlap)), at least 1 (the whole axis when roi equals
//     it); windows start at k * step, the last one moved back to end at the edge;
//   - each window's output is weighted by an importance map, constant 1 or a separable gaussian
//     exp(-x^2 / (2 sigma^2)) with x centred on the window ((roi - 1) / 2) and sigma = roi / 8,
//     clamped below at 1e-3 (nnU-Net uses the same sigma); the result is sum(w p) / sum(w).
// --mirror (nnU-Net's test-time augmentation) runs each window also flipped along every
// combination of spatial axes (4 in 2D, 8 in 3D) and averages the flipped-back outputs before
// weighting.
//
// Memory: the input volume, the f32 output and weight sums (out_channels + 1 volumes) and the
// network's buffers for `batch` windows; never a whole-volume forward. Every forward runs on
// exactly `batch` windows (a short last batch is padded with empty windows), so one set of
// network buffers serves the whole volume.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "unet/nn/unet.h"

namespace unet {

enum class Blend { gaussian, constant };
Blend parse_blend(const std::string& name);  // throws UsageError naming --blend
const char* blend_name(Blend b);

struct WindowOptions {
    Dims roi;                      // window size H,W or D,H,W; each a multiple of 2^depth
    double overlap = 0.5;          // share of a window shared with its neighbour, [0, 1)
    Blend blend = Blend::gaussian;
    int64_t batch = 1;             // windows per forward (--sw_batch)
    bool mirror = false;           // average over all axis flips

    // Throws UsageError naming --roi, --overlap or --sw_batch when the model cannot run them.
    void validate(const UNetConfig& model) const;
};

// Start offsets of the windows along one axis of `size` (already padded to at least roi).
std::vector<int64_t> window_starts(int64_t size, int64_t roi, double overlap);
// Number of windows over `spatial` (after padding).
int64_t window_count(const Dims& spatial, const WindowOptions& o);
// prod(roi) weights, W fastest.
std::vector<float> importance_map(const Dims& roi, Blend blend);

// What sliding_window_predict allocates for one image beyond its input and the network: the
// output (the weight sums are computed, not stored), the window batch in and out, the importance map.
int64_t sliding_window_memory_bytes(int channels, int out_channels, const Dims& spatial, const WindowOptions& o);

// Called after each batch of windows: windows done, windows in all.
using WindowProgress = std::function<void(int64_t done, int64_t total)>;

// input: in_channels x spatial floats (plain); returns out_channels x spatial probabilities.
// The model runs in eval mode (batch-norm running statistics, no dropout).
std::vector<float> sliding_window_predict(UNet& model, const float* input, const Dims& spatial,
                                          const WindowOptions& o, const WindowProgress& progress = {});
// The same, taking the input's memory: where one window is the whole volume and the model keeps
// its own copy of the input (an inference plan), the input is freed before the network runs.
std::vector<float> sliding_window_predict(UNet& model, std::vector<float>&& input, const Dims& spatial,
                                          const WindowOptions& o, const WindowProgress& progress = {});
// The same over several images of one size (MONAI's batch dimension): the windows of all images
// share the window batches, so that many small images (2D slices) fill every forward.
std::vector<std::vector<float>> sliding_window_predict(UNet& model, const std::vector<const float*>& inputs,
                                                       const Dims& spatial, const WindowOptions& o,
                                                       const WindowProgress& progress = {});

}  // namespace unet
