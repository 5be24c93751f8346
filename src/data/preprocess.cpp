#include "unet/data/preprocess.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "unet/core/check.h"
#include "unet/core/rng.h"

namespace unet {

void crop_depth_distmis(Volume& v) {
    if (v.depth != kMsdDepth) return;
    Volume out;
    out.resize(v.channels, kDistmisDepth, v.height, v.width);
    const int64_t plane = v.height * v.width;
    for (int64_t c = 0; c < v.channels; ++c)
        std::copy(v.channel(c) + 2 * plane, v.channel(c) + (2 + kDistmisDepth) * plane, out.channel(c));
    v = std::move(out);
}

void standardize_brain(Volume& image) {
    const int64_t V = image.voxels();
    std::vector<uint8_t> brain(size_t(V), 0);
    for (int64_t c = 0; c < image.channels; ++c) {
        const float* x = image.channel(c);
        for (int64_t i = 0; i < V; ++i) brain[size_t(i)] |= x[i] != 0.f;
    }
    for (int64_t c = 0; c < image.channels; ++c) {
        float* x = image.channel(c);
        double s = 0, s2 = 0;
        int64_t n = 0;
        for (int64_t i = 0; i < V; ++i)
            if (brain[size_t(i)]) {
                s += x[i];
                s2 += double(x[i]) * x[i];
                ++n;
            }
        const double mean = n ? s / double(n) : 0.0;
        const double var = n ? std::max(0.0, s2 / double(n) - mean * mean) : 0.0;
        const double inv = var > 0 ? 1.0 / std::sqrt(var) : 1.0;
        for (int64_t i = 0; i < V; ++i) x[i] = brain[size_t(i)] ? float((x[i] - mean) * inv) : 0.f;
    }
}

void check_labels(const Volume& label) {
    for (size_t i = 0; i < label.data.size(); ++i) {
        const float v = label.data[i];
        if (!(v == 0.f || v == 1.f || v == 2.f || v == 3.f)) {
            std::ostringstream os;
            os << "label value " << v << " at voxel " << i << " outside 0-3 (MSD Task01: 0 background, 1 oedema, "
               << "2 non-enhancing tumour, 3 enhancing tumour)";
            throw std::runtime_error(os.str());
        }
    }
}

namespace {
// Half-pixel source coordinate and its two neighbours, clamped at the edges (PyTorch's
// align_corners=False).
struct Tap {
    int64_t i0, i1;
    float w1;
};
std::vector<Tap> taps(int64_t in, int64_t out) {
    std::vector<Tap> t(static_cast<size_t>(out));
    const double scale = double(in) / double(out);
    for (int64_t o = 0; o < out; ++o) {
        double src = (double(o) + 0.5) * scale - 0.5;
        src = std::max(src, 0.0);
        int64_t i0 = std::min<int64_t>(int64_t(src), in - 1);
        int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
        t[size_t(o)] = {i0, i1, float(src - double(i0))};
    }
    return t;
}
}  // namespace

Volume resize_linear(const Volume& v, int64_t depth, int64_t height, int64_t width) {
    Volume out;
    out.resize(v.channels, depth, height, width);
    const auto tz = taps(v.depth, depth), ty = taps(v.height, height), tx = taps(v.width, width);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t c = 0; c < v.channels; ++c)
        for (int64_t z = 0; z < depth; ++z) {
            const float* in = v.channel(c);
            float* o = out.channel(c) + z * height * width;
            const Tap& a = tz[size_t(z)];
            for (int64_t y = 0; y < height; ++y) {
                const Tap& b = ty[size_t(y)];
                for (int64_t x = 0; x < width; ++x) {
                    const Tap& e = tx[size_t(x)];
                    auto at = [&](int64_t zz, int64_t yy, int64_t xx) { return in[(zz * v.height + yy) * v.width + xx]; };
                    const float c00 = at(a.i0, b.i0, e.i0) * (1 - e.w1) + at(a.i0, b.i0, e.i1) * e.w1;
                    const float c01 = at(a.i0, b.i1, e.i0) * (1 - e.w1) + at(a.i0, b.i1, e.i1) * e.w1;
                    const float c10 = at(a.i1, b.i0, e.i0) * (1 - e.w1) + at(a.i1, b.i0, e.i1) * e.w1;
                    const float c11 = at(a.i1, b.i1, e.i0) * (1 - e.w1) + at(a.i1, b.i1, e.i1) * e.w1;
                    const float c0 = c00 * (1 - b.w1) + c01 * b.w1, c1 = c10 * (1 - b.w1) + c11 * b.w1;
                    o[y * width + x] = c0 * (1 - a.w1) + c1 * a.w1;
                }
            }
        }
    return out;
}

Volume resize_labels(const Volume& label, int64_t depth, int64_t height, int64_t width) {
    Volume out;
    out.resize(1, depth, height, width);
    // Label l marks the nested region "label >= l" (WT, TC, ET in MSD numbering): each region is
    // resized linearly and thresholded at 0.5, the larger regions first. Linear resizing is
    // monotone, so the regions stay nested, and WT comes out as the binary mask resized alone.
    Volume region;
    region.resize(1, label.depth, label.height, label.width);
    for (int l = 1; l <= 3; ++l) {
        for (size_t i = 0; i < label.data.size(); ++i) region.data[i] = label.data[i] >= float(l) ? 1.f : 0.f;
        const Volume r = resize_linear(region, depth, height, width);
        for (size_t i = 0; i < out.data.size(); ++i)
            if (r.data[i] >= 0.5f) out.data[i] = float(l);
    }
    return out;
}

Volume axial_slice(const Volume& v, int64_t z) {
    UNET_CHECK(z >= 0 && z < v.depth, "slice " << z << " of depth " << v.depth);
    Volume out;
    out.resize(v.channels, 1, v.height, v.width);
    const int64_t plane = v.height * v.width;
    for (int64_t c = 0; c < v.channels; ++c)
        std::copy(v.channel(c) + z * plane, v.channel(c) + (z + 1) * plane, out.channel(c));
    return out;
}

std::vector<int> split_cases(int64_t n, const std::vector<double>& fractions, uint64_t seed) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    Rng rng(seed);
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng.below(i + 1))]);
    const int64_t n_train = std::llround(fractions[0] * double(n));
    const int64_t n_val = std::min<int64_t>(n - n_train, std::llround(fractions[1] * double(n)));
    std::vector<int> split(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) split[size_t(order[size_t(k)])] = k < n_train ? 0 : k < n_train + n_val ? 1 : 2;
    return split;
}

std::vector<double> parse_split(const std::string& text) {
    std::vector<double> f;
    std::stringstream ss(text);
    std::string item;
    const std::string expect = "--split: expected three non-negative fractions summing to 1 (train,val,test), got '" + text + "'";
    while (std::getline(ss, item, ',')) {
        try {
            size_t pos = 0;
            const double v = std::stod(item, &pos);
            if (pos != item.size() || !(v >= 0)) throw std::invalid_argument(item);
            f.push_back(v);
        } catch (const std::exception&) {
            throw UsageError(expect);
        }
    }
    if (f.size() != 3 || std::fabs(f[0] + f[1] + f[2] - 1.0) > 1e-6) throw UsageError(expect);
    return f;
}

}  // namespace unet
