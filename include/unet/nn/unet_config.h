// What a UNet is, without building one (nor pulling in oneDNN): its configuration, normalisation
// and up-sampling kinds and their names. The network itself is unet.h.
#pragma once

#include <cstdint>
#include <string>

#include "unet/core/dims.h"

namespace unet {

enum class NormKind { none, batch, group };
NormKind parse_norm(const std::string& name);  // throws UsageError naming the value
const char* norm_name(NormKind kind);

enum class Upsampling { transposed, nearest, linear };
Upsampling parse_upsampling(const std::string& name);  // throws UsageError
const char* upsampling_name(Upsampling u);

struct UNetConfig {
    int dims = 2;                  // 2 or 3
    int64_t in_channels = 4;
    int64_t out_channels = 1;
    int64_t base_filters = 32;
    int depth = 4;
    Upsampling upsampling = Upsampling::transposed;
    NormKind norm = NormKind::none;
    int64_t norm_groups = 8;
    float dropout = 0.f;
    bool winograd = false;         // 2D with base_filters a multiple of 16: 3x3 convs on Winograd
    uint64_t seed = 42;            // He initialisation and dropout masks

    // Throws UsageError naming the flag if the model is impossible; `spatial` (optional) is the
    // input size to check against 2^depth.
    void validate(const Dims& spatial = {}) const;
    int64_t filters(int level) const { return base_filters << level; }
};

}  // namespace unet
