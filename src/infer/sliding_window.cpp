#include "unet/infer/sliding_window.h"

#include <algorithm>
#include <cmath>

#include "unet/core/check.h"

namespace unet {

Blend parse_blend(const std::string& name) {
    if (name == "gaussian") return Blend::gaussian;
    if (name == "constant") return Blend::constant;
    throw UsageError("--blend: expected gaussian or constant, got '" + name + "'");
}

const char* blend_name(Blend b) { return b == Blend::gaussian ? "gaussian" : "constant"; }

void WindowOptions::validate(const UNetConfig& model) const {
    if (int(roi.size()) != model.dims)
        throw UsageError("--roi: expected " + std::to_string(model.dims) + " sizes for a " + std::to_string(model.dims) +
                         "D model, got " + std::to_string(roi.size()));
    const int64_t unit = int64_t(1) << model.depth;
    for (int64_t r : roi)
        if (r < unit || r % unit != 0)
            throw UsageError("--roi: every size must be a positive multiple of 2^depth = " + std::to_string(unit) +
                             " for this model, got " + std::to_string(r));
    if (!(overlap >= 0.0 && overlap < 1.0))
        throw UsageError("--overlap: expected a value in [0, 1), got " + std::to_string(overlap));
    if (batch < 1) throw UsageError("--sw_batch: expected at least 1, got " + std::to_string(batch));
}

std::vector<int64_t> window_starts(int64_t size, int64_t roi, double overlap) {
    UNET_CHECK(size >= roi && roi > 0, "size " << size << " roi " << roi);
    if (roi == size) return {0};
    const int64_t step = std::max<int64_t>(1, int64_t(double(roi) * (1.0 - overlap)));
    std::vector<int64_t> starts;
    for (int64_t k = 0;; ++k) {
        const int64_t s = k * step;
        starts.push_back(std::min(s, size - roi));
        if (s + roi >= size) break;
    }
    return starts;
}

namespace {

// Spatial sizes as D, H, W (2D: D = 1).
struct Grid {
    int64_t d = 1, h = 1, w = 1;
    explicit Grid(const Dims& s) {
        UNET_CHECK(s.size() == 2 || s.size() == 3, "spatial rank " << s.size());
        if (s.size() == 3) d = s[0];
        h = s[s.size() - 2], w = s[s.size() - 1];
    }
    Grid(int64_t d_, int64_t h_, int64_t w_) : d(d_), h(h_), w(w_) {}
    int64_t voxels() const { return d * h * w; }
};

struct Window {
    int64_t z, y, x;  // start in the padded volume
};

std::vector<Window> windows_of(const Grid& padded, const Grid& roi, double overlap) {
    std::vector<Window> out;
    for (int64_t z : window_starts(padded.d, roi.d, overlap))
        for (int64_t y : window_starts(padded.h, roi.h, overlap))
            for (int64_t x : window_starts(padded.w, roi.w, overlap)) out.push_back({z, y, x});
    return out;
}

std::vector<float> gaussian_1d(int64_t n) {
    std::vector<float> g(static_cast<size_t>(n));
    const float sigma = float(double(n) * 0.125);
    for (int64_t i = 0; i < n; ++i) {
        const float x = float(i) - float(n - 1) / 2.f;
        g[size_t(i)] = std::exp(x * x / (-2.f * sigma * sigma));
    }
    return g;
}

// The input voxel a window voxel reads, as an offset into one channel of the unpadded input, or -1
// in the padding; flipped along the axes set in `flip` (bit 0: W, bit 1: H, bit 2: D).
struct WindowSource {
    const Grid &in, &pad_before, &roi;
    const Window& win;
    int flip;
    // The row (z, y) of the window: its start in a channel of the input, or -1 in the padding.
    int64_t row(int64_t z, int64_t y) const {
        const int64_t iz = win.z + ((flip & 4) ? roi.d - 1 - z : z) - pad_before.d;
        const int64_t iy = win.y + ((flip & 2) ? roi.h - 1 - y : y) - pad_before.h;
        return iz < 0 || iz >= in.d || iy < 0 || iy >= in.h ? -1 : (iz * in.h + iy) * in.w;
    }
    int64_t column(int64_t x) const {  // x's input column, or -1 in the padding
        const int64_t ix = win.x + ((flip & 1) ? roi.w - 1 - x : x) - pad_before.w;
        return ix >= 0 && ix < in.w ? ix : -1;
    }
};

// Copies one window of the (virtually zero-padded) input into dst, plain (C x roi).
void gather(const float* input, int64_t C, const WindowSource& w, float* dst) {
    const Grid& roi = w.roi;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t c = 0; c < C; ++c)
        for (int64_t z = 0; z < roi.d; ++z)
            for (int64_t y = 0; y < roi.h; ++y) {
                float* out = dst + ((c * roi.d + z) * roi.h + y) * roi.w;
                const int64_t r = w.row(z, y);
                if (r < 0) {
                    std::fill(out, out + roi.w, 0.f);
                    continue;
                }
                const float* src = input + c * w.in.voxels() + r;
                for (int64_t x = 0; x < roi.w; ++x) {
                    const int64_t ix = w.column(x);
                    out[x] = ix >= 0 ? src[ix] : 0.f;
                }
            }
}

// The same window channels-last (roi x C), straight into the network's own input buffer.
void gather_channels_last(const float* input, int64_t C, const WindowSource& w, float* dst) {
    const Grid& roi = w.roi;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t z = 0; z < roi.d; ++z)
        for (int64_t y = 0; y < roi.h; ++y) {
            float* out = dst + (z * roi.h + y) * roi.w * C;
            const int64_t r = w.row(z, y);
            if (r < 0) {
                std::fill(out, out + roi.w * C, 0.f);
                continue;
            }
            for (int64_t x = 0; x < roi.w; ++x) {
                const int64_t ix = w.column(x);
                for (int64_t c = 0; c < C; ++c) out[x * C + c] = ix >= 0 ? input[c * w.in.voxels() + r + ix] : 0.f;
            }
        }
}

// acc (K x roi) += scale * the window output y (K x roi) flipped back.
void add_unflipped(const float* y, int64_t K, const Grid& roi, int flip, float scale, float* acc) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t k = 0; k < K; ++k)
        for (int64_t z = 0; z < roi.d; ++z) {
            const int64_t oz = (flip & 4) ? roi.d - 1 - z : z;
            for (int64_t yy = 0; yy < roi.h; ++yy) {
                const int64_t oy = (flip & 2) ? roi.h - 1 - yy : yy;
                const float* src = y + ((k * roi.d + z) * roi.h + yy) * roi.w;
                float* dst = acc + ((k * roi.d + oz) * roi.h + oy) * roi.w;
                if (flip & 1)
                    for (int64_t x = 0; x < roi.w; ++x) dst[roi.w - 1 - x] += scale * src[x];
                else
                    for (int64_t x = 0; x < roi.w; ++x) dst[x] += scale * src[x];
            }
        }
}

// out (K x in) += weight * acc over the window's voxels inside the unpadded volume. Windows are
// scattered one at a time: overlapping windows never race.
void scatter(const float* acc, int64_t K, const std::vector<float>& weight, const Grid& in, const Grid& pad_before,
             const Grid& roi, const Window& win, float* out) {
#pragma omp parallel for schedule(static)
    for (int64_t z = 0; z < roi.d; ++z) {
        const int64_t iz = win.z + z - pad_before.d;
        if (iz < 0 || iz >= in.d) continue;
        for (int64_t y = 0; y < roi.h; ++y) {
            const int64_t iy = win.y + y - pad_before.h;
            if (iy < 0 || iy >= in.h) continue;
            const int64_t x0 = std::max<int64_t>(0, pad_before.w - win.x);
            const int64_t x1 = std::min<int64_t>(roi.w, in.w + pad_before.w - win.x);
            const float* w = weight.data() + (z * roi.h + y) * roi.w;
            const int64_t base = (iz * in.h + iy) * in.w + win.x - pad_before.w;
            for (int64_t k = 0; k < K; ++k) {
                const float* a = acc + ((k * roi.d + z) * roi.h + y) * roi.w;
                float* o = out + k * in.voxels() + base;
                for (int64_t x = x0; x < x1; ++x) o[x] += w[x] * a[x];
            }
        }
    }
}

// For each coordinate 0..size-1 of the unpadded axis: its offsets in the windows that cover it,
// in the order of their starts (the order scatter() adds the windows in).
std::vector<std::vector<int64_t>> covering_offsets(int64_t size, int64_t pad_before, const std::vector<int64_t>& starts,
                                                   int64_t roi) {
    auto cover = std::vector<std::vector<int64_t>>(size_t(size));
    for (int64_t i = 0; i < size; ++i)
        for (int64_t s : starts)
            if (s <= i + pad_before && i + pad_before < s + roi) cover[size_t(i)].push_back(i + pad_before - s);
    return cover;
}

// out (K x in) /= the sum of the window weights at each voxel. The sums are not kept in a volume of
// their own (35 MB for a 152 x 240 x 240 case): the windows form a grid, so the ones covering a
// voxel are the products of those covering its coordinate along each axis; adding their weights in
// the windows' order gives the same float sum a scattered sum map would hold.
void divide_by_weight_sums(float* out, int64_t K, const std::vector<float>& weight, const Grid& in, const Grid& padded,
                           const Grid& pad_before, const Grid& roi, double overlap) {
    const auto cz = covering_offsets(in.d, pad_before.d, window_starts(padded.d, roi.d, overlap), roi.d);
    const auto cy = covering_offsets(in.h, pad_before.h, window_starts(padded.h, roi.h, overlap), roi.h);
    const auto cx = covering_offsets(in.w, pad_before.w, window_starts(padded.w, roi.w, overlap), roi.w);
    const int64_t V = in.voxels();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t z = 0; z < in.d; ++z)
        for (int64_t y = 0; y < in.h; ++y)
            for (int64_t x = 0; x < in.w; ++x) {
                float sum = 0.f;
                for (int64_t oz : cz[size_t(z)])
                    for (int64_t oy : cy[size_t(y)])
                        for (int64_t ox : cx[size_t(x)]) sum += weight[size_t((oz * roi.h + oy) * roi.w + ox)];
                const float inv = 1.f / sum;
                const int64_t i = (z * in.h + y) * in.w + x;
                for (int64_t k = 0; k < K; ++k) out[k * V + i] *= inv;
            }
}

// One window that is the whole (unpadded) image: the network's output as it is, without the
// window copies (a whole 4 x 152 x 240 x 240 volume is 560 MB of them) and with no weighting to
// undo (sum(w p) / sum(w) is p).
bool is_whole_window(const Dims& spatial, const WindowOptions& o, size_t images) {
    return images == 1 && o.batch == 1 && !o.mirror && Dims(spatial) == o.roi;
}

// The output of the forward of a whole-window image that stage_input() prepared.
std::vector<float> whole_window_output(UNet& model, int64_t voxels, const WindowProgress& progress) {
    std::vector<float> y(size_t(model.config().out_channels * voxels));
    model.forward_staged(y.data());
    if (progress) progress(1, 1);
    return y;
}

}  // namespace

int64_t window_count(const Dims& spatial, const WindowOptions& o) {
    const Grid in(spatial), roi(o.roi);
    const Grid padded(std::max(in.d, roi.d), std::max(in.h, roi.h), std::max(in.w, roi.w));
    return int64_t(windows_of(padded, roi, o.overlap).size());
}

std::vector<float> importance_map(const Dims& roi_dims, Blend blend) {
    const Grid roi(roi_dims);
    std::vector<float> m(size_t(roi.voxels()), 1.f);
    if (blend == Blend::constant) return m;
    // 2D windows have no depth axis: the depth factor is 1, not a gaussian of one sample.
    const std::vector<float> gz = roi_dims.size() == 3 ? gaussian_1d(roi.d) : std::vector<float>{1.f};
    const std::vector<float> gy = gaussian_1d(roi.h), gx = gaussian_1d(roi.w);
    float lo = 1.f;
    for (int64_t z = 0; z < roi.d; ++z)
        for (int64_t y = 0; y < roi.h; ++y)
            for (int64_t x = 0; x < roi.w; ++x) {
                const float v = gz[size_t(z)] * gy[size_t(y)] * gx[size_t(x)];
                m[size_t((z * roi.h + y) * roi.w + x)] = v;
                lo = std::min(lo, v);
            }
    // Weights far from the centre would vanish; MONAI clamps them at 1e-3 (or the minimum if larger).
    const float floor = std::max(lo, 1e-3f);
    for (float& v : m) v = std::max(v, floor);
    return m;
}

int64_t sliding_window_memory_bytes(int channels, int out_channels, const Dims& spatial, const WindowOptions& o) {
    const int64_t V = product(spatial), R = product(o.roi);
    return 4 * (int64_t(out_channels) * V + o.batch * (int64_t(channels) + out_channels) * R + R);
}

std::vector<float> sliding_window_predict(UNet& model, const float* input, const Dims& spatial,
                                          const WindowOptions& o, const WindowProgress& progress) {
    return std::move(sliding_window_predict(model, std::vector<const float*>{input}, spatial, o, progress)[0]);
}

std::vector<float> sliding_window_predict(UNet& model, std::vector<float>&& input, const Dims& spatial,
                                          const WindowOptions& o, const WindowProgress& progress) {
    o.validate(model.config());
    if (!is_whole_window(spatial, o, 1)) return sliding_window_predict(model, input.data(), spatial, o, progress);
    if (model.stage_input(input.data(), 1, o.roi)) std::vector<float>().swap(input);
    return whole_window_output(model, product(spatial), progress);
}

std::vector<std::vector<float>> sliding_window_predict(UNet& model, const std::vector<const float*>& inputs,
                                                       const Dims& spatial, const WindowOptions& o,
                                                       const WindowProgress& progress) {
    const UNetConfig& cfg = model.config();
    o.validate(cfg);
    UNET_CHECK(spatial.size() == o.roi.size(), "spatial rank " << spatial.size() << " roi rank " << o.roi.size());
    const Grid in(spatial), roi(o.roi);
    const Grid padded(std::max(in.d, roi.d), std::max(in.h, roi.h), std::max(in.w, roi.w));
    const Grid pad_before((padded.d - in.d) / 2, (padded.h - in.h) / 2, (padded.w - in.w) / 2);
    const std::vector<Window> wins = windows_of(padded, roi, o.overlap);
    const std::vector<float> weight = importance_map(o.roi, o.blend);
    const int64_t C = cfg.in_channels, K = cfg.out_channels, R = roi.voxels(), B = o.batch, V = in.voxels();
    // 2D flips are W and H (bits 0, 1); 3D adds D (bit 2).
    const int flips = o.mirror ? (1 << cfg.dims) : 1;
    const int64_t per_image = int64_t(wins.size()), total = per_image * int64_t(inputs.size());
    if (is_whole_window(spatial, o, inputs.size())) {
        model.stage_input(inputs[0], 1, o.roi);
        return {whole_window_output(model, V, progress)};
    }

    std::vector<std::vector<float>> out(inputs.size(), std::vector<float>(size_t(K * V), 0.f));
    // Windows go straight into the network's own (channels-last) input buffer where it has one;
    // else through a plain batch buffer of ours.
    const bool staged = model.staging_area(B, o.roi) != nullptr;
    std::vector<float> batch_in(staged ? 0 : size_t(B * C * R));
    std::vector<float> acc(size_t(B * K * R));
    for (int64_t first = 0; first < total; first += B) {
        const int64_t n = std::min(B, total - first);
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int f = 0; f < flips; ++f) {
            float* dst = staged ? model.staging_area(B, o.roi) : batch_in.data();
            for (int64_t b = 0; b < n; ++b) {
                const int64_t k = first + b;
                const WindowSource w{in, pad_before, roi, wins[size_t(k % per_image)], f};
                if (staged) gather_channels_last(inputs[size_t(k / per_image)], C, w, dst + b * C * R);
                else gather(inputs[size_t(k / per_image)], C, w, dst + b * C * R);
            }
            if (n < B) std::fill(dst + n * C * R, dst + B * C * R, 0.f);
            const float* y = staged ? model.forward_staged() : model.forward(batch_in.data(), B, o.roi, /*training=*/false);
            for (int64_t b = 0; b < n; ++b)
                add_unflipped(y + b * K * R, K, roi, f, 1.f / float(flips), &acc[size_t(b * K * R)]);
        }
        for (int64_t b = 0; b < n; ++b) {
            const int64_t k = first + b;
            scatter(&acc[size_t(b * K * R)], K, weight, in, pad_before, roi, wins[size_t(k % per_image)],
                    out[size_t(k / per_image)].data());
        }
        if (progress) progress(first + n, total);
    }
    for (auto& o_img : out) divide_by_weight_sums(o_img.data(), K, weight, in, padded, pad_before, roi, o.overlap);
    return out;
}

}  // namespace unet
