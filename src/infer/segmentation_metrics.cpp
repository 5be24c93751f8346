#include "unet/infer/segmentation_metrics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "unet/core/check.h"

namespace unet {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_geometry(int64_t D, int64_t H, int64_t W, const Spacing& s) {
    if (D <= 0 || H <= 0 || W <= 0) {
        std::ostringstream os;
        os << "segmentation metrics: shape " << D << " x " << H << " x " << W << " is not positive";
        throw std::invalid_argument(os.str());
    }
    for (double v : {s.z, s.y, s.x})
        if (!(std::isfinite(v) && v > 0)) {
            std::ostringstream os;
            os << "segmentation metrics: voxel spacing " << s.z << ", " << s.y << ", " << s.x
               << " mm must be finite and positive";
            throw std::invalid_argument(os.str());
        }
}

// Inclusive bounding box of the voxels set in any of the masks; empty() when none is.
struct Box {
    int64_t z0 = 0, z1 = -1, y0 = 0, y1 = -1, x0 = 0, x1 = -1;
    bool empty() const { return z1 < z0; }
    int64_t depth() const { return z1 - z0 + 1; }
    int64_t height() const { return y1 - y0 + 1; }
    int64_t width() const { return x1 - x0 + 1; }
    void add(int64_t z, int64_t y, int64_t x) {
        if (empty()) {
            z0 = z1 = z, y0 = y1 = y, x0 = x1 = x;
            return;
        }
        z0 = std::min(z0, z), z1 = std::max(z1, z);
        y0 = std::min(y0, y), y1 = std::max(y1, y);
        x0 = std::min(x0, x), x1 = std::max(x1, x);
    }
    void merge(const Box& o) {
        if (o.empty()) return;
        add(o.z0, o.y0, o.x0);
        add(o.z1, o.y1, o.x1);
    }
};

Box bounding_box(const uint8_t* a, const uint8_t* b, int64_t D, int64_t H, int64_t W) {
    Box box;
#pragma omp parallel
    {
        Box mine;
#pragma omp for schedule(static) nowait
        for (int64_t z = 0; z < D; ++z)
            for (int64_t y = 0; y < H; ++y) {
                const uint8_t* ra = a + (z * H + y) * W;
                const uint8_t* rb = b + (z * H + y) * W;
                int64_t first = -1, last = -1;
                for (int64_t x = 0; x < W; ++x)
                    if (ra[x] | rb[x]) {
                        if (first < 0) first = x;
                        last = x;
                    }
                if (first >= 0) mine.add(z, y, first), mine.add(z, y, last);
            }
#pragma omp critical
        box.merge(mine);
    }
    return box;
}

// Surface of mask m inside the box: set voxels with a face neighbour that is unset or outside the
// box. The box holds every set voxel of both masks, so outside the box is outside the mask, and
// the surface equals MONAI's mask XOR binary_erosion(mask) on the whole array (scipy erodes with
// border 0, i.e. the array's edge counts as outside too).
std::vector<uint8_t> surface_in_box(const uint8_t* m, int64_t H, int64_t W, const Box& box) {
    const int64_t bd = box.depth(), bh = box.height(), bw = box.width();
    std::vector<uint8_t> out(size_t(bd * bh * bw), 0);
    auto at = [&](int64_t z, int64_t y, int64_t x) -> bool {  // box coordinates
        if (z < 0 || z >= bd || y < 0 || y >= bh || x < 0 || x >= bw) return false;
        return m[((box.z0 + z) * H + box.y0 + y) * W + box.x0 + x] != 0;
    };
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t z = 0; z < bd; ++z)
        for (int64_t y = 0; y < bh; ++y)
            for (int64_t x = 0; x < bw; ++x) {
                if (!at(z, y, x)) continue;
                const bool interior = at(z - 1, y, x) && at(z + 1, y, x) && at(z, y - 1, x) && at(z, y + 1, x) &&
                                      at(z, y, x - 1) && at(z, y, x + 1);
                out[size_t((z * bh + y) * bw + x)] = !interior;
            }
    return out;
}

// One line of the separable transform: d[q] = min_i (q - i)^2 w^2 + f[i], the lower envelope of
// the parabolas rooted at the finite f[i] (Felzenszwalb & Huttenlocher 2012). Positions are in mm
// so that each axis carries its own spacing. v, z: scratch of n and n + 1 entries.
void envelope_1d(const double* f, int64_t n, double w, double* d, int64_t* v, double* z) {
    int64_t k = -1;
    for (int64_t q = 0; q < n; ++q) {
        if (f[q] == kInf) continue;  // no parabola: nothing reachable from here yet
        const double pq = double(q) * w, hq = f[q] + pq * pq;
        if (k < 0) {
            k = 0, v[0] = q, z[0] = -kInf, z[1] = kInf;
            continue;
        }
        // Drop the parabolas the new one hides; z[0] = -inf stops this at the first one at the latest.
        double s;
        for (;;) {
            const double pv = double(v[k]) * w;
            s = (hq - (f[v[k]] + pv * pv)) / (2.0 * (pq - pv));
            if (s > z[k]) break;
            --k;
        }
        ++k, v[k] = q, z[k] = s, z[k + 1] = kInf;
    }
    if (k < 0) {
        std::fill(d, d + n, kInf);
        return;
    }
    int64_t j = 0;
    for (int64_t q = 0; q < n; ++q) {
        const double pq = double(q) * w;
        while (z[j + 1] < pq) ++j;
        const double dv = pq - double(v[j]) * w;
        d[q] = dv * dv + f[v[j]];
    }
}

// Runs envelope_1d along one axis of a D x H x W grid, in place. count lines, each of n values
// `stride` apart; line l starts at base(l).
template <class Base>
void transform_axis(double* g, int64_t lines, int64_t n, int64_t stride, double w, Base base) {
#pragma omp parallel
    {
        const size_t len = size_t(n);
        std::vector<double> f(len), d(len), zs(len + 1);
        std::vector<int64_t> v(len);
#pragma omp for schedule(static)
        for (int64_t l = 0; l < lines; ++l) {
            double* p = g + base(l);
            for (int64_t i = 0; i < n; ++i) f[size_t(i)] = p[i * stride];
            envelope_1d(f.data(), n, w, d.data(), v.data(), zs.data());
            for (int64_t i = 0; i < n; ++i) p[i * stride] = d[size_t(i)];
        }
    }
}

// numpy.percentile / torch.quantile with linear interpolation: the value at rank q (n - 1)
// between the two order statistics around it. Reorders `values`.
double percentile_linear(std::vector<double>& values, double q) {
    const size_t n = values.size();
    if (n == 0) return kNaN;
    const double rank = q * double(n - 1);
    const size_t lo = std::min(size_t(std::floor(rank)), n - 1);
    std::nth_element(values.begin(), values.begin() + lo, values.end());
    const double below = values[lo];
    const double t = rank - double(lo);
    if (t <= 0 || lo + 1 >= n) return below;
    // After nth_element everything past lo is >= below; the next order statistic is their minimum.
    const double above = *std::min_element(values.begin() + lo + 1, values.end());
    return below + (above - below) * t;
}

// The 95th percentile of the distances from surface `from` to the nearest voxel of surface `to`,
// both given inside the box.
double directed_hd95(const std::vector<uint8_t>& from, const std::vector<uint8_t>& to, const Box& box,
                     const Spacing& s, std::vector<double>& scratch) {
    squared_distance_transform(to.data(), box.depth(), box.height(), box.width(), s, scratch.data());
    std::vector<double> dist;
    for (size_t i = 0; i < from.size(); ++i)
        if (from[i]) dist.push_back(std::sqrt(scratch[i]));
    return percentile_linear(dist, 0.95);
}

// hd95_mm without the argument checks, for masks already known to lie in `box` (non-empty).
double hd95_in_box(const uint8_t* a, const uint8_t* b, int64_t H, int64_t W, const Box& box, const Spacing& s) {
    const std::vector<uint8_t> ea = surface_in_box(a, H, W, box), eb = surface_in_box(b, H, W, box);
    std::vector<double> scratch(ea.size());
    const double ab = directed_hd95(ea, eb, box, s, scratch);
    const double ba = directed_hd95(eb, ea, box, s, scratch);
    return std::max(ab, ba);
}

bool any_set(const uint8_t* m, int64_t n) {
    bool any = false;
#pragma omp parallel for reduction(|| : any) schedule(static)
    for (int64_t i = 0; i < n; ++i) any = any || m[i] != 0;
    return any;
}

}  // namespace

EmptyRule parse_empty_rule(const std::string& text) {
    if (text == "brats") return EmptyRule::brats;
    if (text == "ignore") return EmptyRule::ignore;
    throw UsageError("--empty must be brats or ignore, got '" + text + "'");
}

const char* empty_rule_name(EmptyRule rule) { return rule == EmptyRule::brats ? "brats" : "ignore"; }

void squared_distance_transform(const uint8_t* feature, int64_t D, int64_t H, int64_t W, const Spacing& s,
                                double* out) {
    check_geometry(D, H, W, s);
    const int64_t n = D * H * W;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = feature[i] ? 0.0 : kInf;
    // x, then y, then z: after each pass out holds the exact squared distance over the axes done.
    transform_axis(out, D * H, W, 1, s.x, [W](int64_t l) { return l * W; });
    transform_axis(out, D * W, H, W, s.y, [H, W](int64_t l) { return (l / W) * H * W + l % W; });
    transform_axis(out, H * W, D, H * W, s.z, [](int64_t l) { return l; });
}

double hd95_mm(const uint8_t* a, const uint8_t* b, int64_t D, int64_t H, int64_t W, const Spacing& s) {
    check_geometry(D, H, W, s);
    const int64_t n = D * H * W;
    if (!any_set(a, n) || !any_set(b, n)) return kNaN;
    return hd95_in_box(a, b, H, W, bounding_box(a, b, D, H, W), s);
}

std::vector<RegionScore> score_case(const uint8_t* predicted, const uint8_t* truth, int64_t D, int64_t H,
                                    int64_t W, const Spacing& s, const std::vector<Region>& regions,
                                    EmptyRule rule) {
    check_geometry(D, H, W, s);
    if (regions.empty()) throw std::invalid_argument("segmentation metrics: no regions to score");
    const int64_t n = D * H * W;
    const double voxel_ml = s.x * s.y * s.z / 1000.0;
    std::vector<uint8_t> p(static_cast<size_t>(n)), t(static_cast<size_t>(n));
    std::vector<RegionScore> scores;
    for (const Region& region : regions) {
        std::array<uint8_t, 256> in{};
        for (int label : region.labels) {
            if (label < 0 || label > 255)
                throw std::invalid_argument("segmentation metrics: region " + region.name + " has label " +
                                            std::to_string(label) + ", outside 0..255");
            in[size_t(label)] = 1;
        }
        int64_t tp = 0, fp = 0, fn = 0, tn = 0;
#pragma omp parallel for reduction(+ : tp, fp, fn, tn) schedule(static)
        for (int64_t i = 0; i < n; ++i) {
            const uint8_t pi = in[predicted[i]], ti = in[truth[i]];
            p[size_t(i)] = pi, t[size_t(i)] = ti;
            tp += pi & ti;
            fp += pi & (ti ^ 1);
            fn += (pi ^ 1) & ti;
            tn += (pi | ti) ^ 1;
        }
        RegionScore r;
        r.region = region.name;
        r.truth_empty = tp + fn == 0;
        r.prediction_empty = tp + fp == 0;
        r.sensitivity = tp + fn > 0 ? double(tp) / double(tp + fn) : 1.0;
        r.specificity = tn + fp > 0 ? double(tn) / double(tn + fp) : 1.0;
        r.predicted_ml = double(tp + fp) * voxel_ml;
        r.true_ml = double(tp + fn) * voxel_ml;
        if (!r.truth_empty && !r.prediction_empty) {
            r.dice = 2.0 * double(tp) / double(2 * tp + fp + fn);
            r.hd95_mm = hd95_in_box(p.data(), t.data(), H, W, bounding_box(p.data(), t.data(), D, H, W), s);
        } else if (rule == EmptyRule::brats) {
            const bool both = r.truth_empty && r.prediction_empty;
            r.dice = both ? 1.0 : 0.0;
            r.hd95_mm = both ? 0.0 : kBratsEmptyHd95Mm;
        } else {  // MONAI: empty truth leaves Dice out; any empty mask has no Hausdorff distance
            r.dice = r.truth_empty ? kNaN : 0.0;
            r.hd95_mm = kNaN;
        }
        scores.push_back(r);
    }
    return scores;
}

Statistic summarize(const std::vector<double>& values) {
    std::vector<double> v;
    for (double x : values)
        if (std::isfinite(x)) v.push_back(x);
    Statistic st{kNaN, kNaN, kNaN, int64_t(v.size())};
    if (v.empty()) return st;
    double sum = 0;
    for (double x : v) sum += x;
    st.mean = sum / double(v.size());
    double sq = 0;
    for (double x : v) sq += (x - st.mean) * (x - st.mean);
    st.std = std::sqrt(sq / double(v.size()));
    st.median = percentile_linear(v, 0.5);
    return st;
}

}  // namespace unet
