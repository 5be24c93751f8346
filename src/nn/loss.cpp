#include "unet/nn/loss.h"

#include <algorithm>
#include <cmath>

#include "unet/core/check.h"

namespace unet {

LossKind parse_loss(const std::string& name) {
    if (name == "dice") return LossKind::dice;
    if (name == "log_dice") return LossKind::log_dice;
    if (name == "bce") return LossKind::bce;
    if (name == "dice_bce") return LossKind::dice_bce;
    throw UsageError("--loss: expected dice, log_dice, bce or dice_bce, got '" + name + "'");
}

const char* loss_name(LossKind kind) {
    switch (kind) {
        case LossKind::dice: return "dice";
        case LossKind::log_dice: return "log_dice";
        case LossKind::bce: return "bce";
        case LossKind::dice_bce: return "dice_bce";
    }
    return "?";
}

namespace {

struct DiceSums {
    double inter = 0, pred = 0, truth = 0;
    double dice() const { return (2 * inter + kDiceSmooth) / (pred + truth + kDiceSmooth); }
};

// Channel c of n samples: n segments of `voxels` floats, `channels * voxels` apart (one segment
// when there is one channel, so the sums are those of one contiguous array).
struct Segments {
    int64_t count, length, stride, offset;
    Segments(int64_t n, int channels, int64_t voxels, int c)
        : count(channels == 1 ? 1 : n),
          length(channels == 1 ? n * voxels : voxels),
          stride(int64_t(channels) * voxels),
          offset(int64_t(c) * voxels) {}
    int64_t at(int64_t s) const { return offset + s * stride; }
};

DiceSums dice_sums(const float* p, const float* t, const Segments& seg) {
    double i = 0, ps = 0, ts = 0;
    for (int64_t s = 0; s < seg.count; ++s) {
        const float* ps_ = p + seg.at(s);
        const float* ts_ = t + seg.at(s);
#pragma omp parallel for reduction(+ : i, ps, ts) schedule(static)
        for (int64_t k = 0; k < seg.length; ++k) {
            i += double(ps_[k]) * ts_[k];
            ps += ps_[k];
            ts += ts_[k];
        }
    }
    return {i, ps, ts};
}

// PyTorch's binary_cross_entropy clamps each log at -100.
inline double clamped_log(double x) { return std::max(std::log(x), -100.0); }

double bce_sum(const float* p, const float* t, const Segments& seg) {
    double s = 0;
    for (int64_t j = 0; j < seg.count; ++j) {
        const float* pj = p + seg.at(j);
        const float* tj = t + seg.at(j);
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (int64_t k = 0; k < seg.length; ++k)
            s -= tj[k] * clamped_log(pj[k]) + (1.0 - tj[k]) * clamped_log(1.0 - pj[k]);
    }
    return s;
}

bool uses_dice(LossKind k) { return k != LossKind::bce; }
bool uses_bce(LossKind k) { return k == LossKind::bce || k == LossKind::dice_bce; }

}  // namespace

namespace {

LossSums channel_sums(LossKind kind, const float* pred, const float* truth, const Segments& seg) {
    LossSums s;
    if (uses_dice(kind)) {
        const DiceSums d = dice_sums(pred, truth, seg);
        s.inter = d.inter, s.pred = d.pred, s.truth = d.truth;
    }
    if (uses_bce(kind)) s.bce = bce_sum(pred, truth, seg);
    s.voxels = double(seg.count * seg.length);
    return s;
}

double channel_loss(LossKind kind, const LossSums& t) {
    double loss = 0;
    if (uses_dice(kind)) {
        const DiceSums d{t.inter, t.pred, t.truth};
        loss += kind == LossKind::log_dice ? -std::log(d.dice()) : 1.0 - d.dice();
    }
    if (uses_bce(kind)) loss += t.bce / t.voxels;
    return loss;
}

// d(channel loss) / d p = a t + b + (bce) (p - t) / (p (1 - p) voxels), all scaled by `weight`.
void channel_grad(LossKind kind, const float* pred, const float* truth, const Segments& seg, const LossSums& t,
                  double weight, float* grad) {
    double a = 0, b = 0;
    if (uses_dice(kind)) {
        const DiceSums d{t.inter, t.pred, t.truth};
        // d Dice / d p_k = (2 t_k (P + T + s) - (2 I + s)) / (P + T + s)^2
        const double denom = d.pred + d.truth + kDiceSmooth;
        const double outer = kind == LossKind::log_dice ? -1.0 / d.dice() : -1.0;
        a = weight * outer * 2.0 / denom;                                    // coefficient of t_k
        b = -weight * outer * (2 * d.inter + kDiceSmooth) / (denom * denom);  // constant term
    }
    const bool bce = uses_bce(kind);
    const double bce_weight = weight / t.voxels;
    for (int64_t s = 0; s < seg.count; ++s) {
        const float* p = pred + seg.at(s);
        const float* y = truth + seg.at(s);
        float* g = grad + seg.at(s);
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < seg.length; ++k) {
            double v = a * y[k] + b;
            if (bce) v += bce_weight * (double(p[k]) - y[k]) / std::max(double(p[k]) * (1.0 - p[k]), 1e-12);
            g[k] = float(v);
        }
    }
}

}  // namespace

std::vector<LossSums> loss_partial_sums(LossKind kind, const float* pred, const float* truth, int64_t n, int channels,
                                        int64_t voxels) {
    std::vector<LossSums> out(static_cast<size_t>(channels));
    for (int c = 0; c < channels; ++c) {
        out[size_t(c)] = channel_sums(kind, pred, truth, Segments(n, channels, voxels, c));
        out[size_t(c)].samples = double(n);
    }
    return out;
}

double loss_from_sums(LossKind kind, const std::vector<LossSums>& total) {
    double loss = 0;
    for (const LossSums& t : total) loss += channel_loss(kind, t);
    return total.empty() ? 0 : loss / double(total.size());
}

void loss_grad(LossKind kind, const float* pred, const float* truth, int64_t n, int channels, int64_t voxels,
               const std::vector<LossSums>& total, float* grad) {
    UNET_CHECK(int(total.size()) == channels, "loss_grad: " << total.size() << " sums for " << channels << " channels");
    for (int c = 0; c < channels; ++c)
        channel_grad(kind, pred, truth, Segments(n, channels, voxels, c), total[size_t(c)], 1.0 / channels, grad);
}

double loss_sum(LossKind kind, const float* pred, const float* truth, int64_t n, int channels, int64_t voxels) {
    return double(n) * loss_from_sums(kind, loss_partial_sums(kind, pred, truth, n, channels, voxels));
}

double loss_sum_and_grad(LossKind kind, const float* pred, const float* truth, int64_t n, int channels,
                         int64_t voxels, double grad_scale, float* grad) {
    const std::vector<LossSums> s = loss_partial_sums(kind, pred, truth, n, channels, voxels);
    loss_grad(kind, pred, truth, n, channels, voxels, s, grad);
    const float scale = float(double(n) * grad_scale);
    if (scale != 1.f)
        for (int64_t k = 0; k < n * channels * voxels; ++k) grad[k] *= scale;
    return double(n) * loss_from_sums(kind, s);
}

}  // namespace unet
