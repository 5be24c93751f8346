#include "unet/data/toy_data.h"

#include <cmath>
#include <cstring>

#include "unet/core/rng.h"

namespace unet {

Batch make_toy_batch(int64_t n, int64_t channels, const Dims& spatial, uint64_t seed, int64_t first_index) {
    Batch b;
    b.n = n;
    b.channels = channels;
    b.spatial = spatial;
    const int64_t V = b.voxels();
    b.images.assign(size_t(n * channels * V), 0.f);
    b.masks.assign(size_t(n * V), 0.f);
    const int nd = int(spatial.size());
    // Coordinates as (z, y, x) with z = 0 in 2D.
    const int64_t D = nd == 3 ? spatial[0] : 1, H = spatial[size_t(nd - 2)], W = spatial[size_t(nd - 1)];
    for (int64_t i = 0; i < n; ++i) {
        Rng rng(seed * 1000003ull + uint64_t(first_index + i));
        struct Blob { float c[3], r[3]; };
        const int blobs = 1 + int(rng.below(2));
        Blob bl[2];
        for (int k = 0; k < blobs; ++k) {
            const int64_t size[3] = {D, H, W};
            for (int a = 0; a < 3; ++a) {
                bl[k].c[a] = size[a] == 1 ? 0.f : rng.uniform(0.3f, 0.7f) * float(size[a]);
                bl[k].r[a] = size[a] == 1 ? 1.f : rng.uniform(0.1f, 0.22f) * float(size[a]);
            }
        }
        float contrast[16], phase[16];
        for (int64_t c = 0; c < channels; ++c) {
            contrast[c % 16] = (c % 2 ? -1.f : 1.f) * rng.uniform(0.6f, 1.2f);
            phase[c % 16] = rng.uniform(0.f, 6.28f);
        }
        float* mask = b.masks.data() + i * V;
        for (int64_t z = 0; z < D; ++z)
            for (int64_t y = 0; y < H; ++y)
                for (int64_t x = 0; x < W; ++x) {
                    const int64_t v = (z * H + y) * W + x;
                    bool inside = false;
                    for (int k = 0; k < blobs; ++k) {
                        const float dz = (float(z) - bl[k].c[0]) / bl[k].r[0];
                        const float dy = (float(y) - bl[k].c[1]) / bl[k].r[1];
                        const float dx = (float(x) - bl[k].c[2]) / bl[k].r[2];
                        inside |= (nd == 3 ? dz * dz : 0.f) + dy * dy + dx * dx <= 1.f;
                    }
                    mask[v] = inside ? 1.f : 0.f;
                    for (int64_t c = 0; c < channels; ++c) {
                        const float texture = 0.3f * std::sin(0.31f * float(x + z) + phase[c % 16]) *
                                              std::cos(0.23f * float(y) + phase[c % 16]);
                        b.images[size_t((i * channels + c) * V + v)] =
                            texture + (inside ? contrast[c % 16] : 0.f) + 0.25f * rng.normal();
                    }
                }
    }
    return b;
}

void take_samples(const Batch& src, const std::vector<int64_t>& indices, Batch& dst) {
    const int64_t V = src.voxels();
    dst.n = int64_t(indices.size());
    dst.channels = src.channels;
    dst.spatial = src.spatial;
    dst.images.resize(size_t(dst.n * src.channels * V));
    dst.masks.resize(size_t(dst.n * V));
    dst.indices.resize(indices.size());
    for (size_t k = 0; k < indices.size(); ++k) {
        const int64_t i = indices[k] % src.n;
        dst.indices[k] = i;
        std::memcpy(dst.images.data() + k * size_t(src.channels * V), src.images.data() + i * src.channels * V,
                    sizeof(float) * size_t(src.channels * V));
        std::memcpy(dst.masks.data() + k * size_t(V), src.masks.data() + i * V, sizeof(float) * size_t(V));
    }
}

}  // namespace unet
