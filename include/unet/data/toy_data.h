// A generated in-memory segmentation set used until a prepared HDF5 dataset is given, and by
// tests: each sample holds one or two ellipsoid "tumours" on a smooth textured background; every
// channel shows the tumour with its own contrast (some darker, some brighter) plus noise, so the
// network has to combine channels. Deterministic in (seed, sample index).
#pragma once

#include <cstdint>
#include <vector>

#include "unet/data/batch.h"

namespace unet {

Batch make_toy_batch(int64_t n, int64_t channels, const Dims& spatial, uint64_t seed, int64_t first_index = 0);

// Copies the samples `indices` of `src` (taken modulo src.n), in that order, into `dst`.
void take_samples(const Batch& src, const std::vector<int64_t>& indices, Batch& dst);

}  // namespace unet
