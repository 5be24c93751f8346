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

DiceSums dice_sums(const float* p, const float* t, int64_t voxels) {
    double i = 0, ps = 0, ts = 0;
#pragma omp parallel for reduction(+ : i, ps, ts) schedule(static)
    for (int64_t k = 0; k < voxels; ++k) {
        i += double(p[k]) * t[k];
        ps += p[k];
        ts += t[k];
    }
    return {i, ps, ts};
}

// PyTorch's binary_cross_entropy clamps each log at -100.
inline double clamped_log(double x) { return std::max(std::log(x), -100.0); }

double bce_mean(const float* p, const float* t, int64_t voxels) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t k = 0; k < voxels; ++k) s -= t[k] * clamped_log(p[k]) + (1.0 - t[k]) * clamped_log(1.0 - p[k]);
    return s / double(voxels);
}

bool uses_dice(LossKind k) { return k != LossKind::bce; }
bool uses_bce(LossKind k) { return k == LossKind::bce || k == LossKind::dice_bce; }

}  // namespace

LossSums loss_partial_sums(LossKind kind, const float* pred, const float* truth, int64_t n, int64_t voxels) {
    const int64_t total = n * voxels;
    LossSums s;
    if (uses_dice(kind)) {
        const DiceSums d = dice_sums(pred, truth, total);
        s.inter = d.inter, s.pred = d.pred, s.truth = d.truth;
    }
    if (uses_bce(kind)) s.bce = bce_mean(pred, truth, total) * double(total);
    s.samples = double(n);
    s.voxels = double(total);
    return s;
}

double loss_from_sums(LossKind kind, const LossSums& t) {
    double loss = 0;
    if (uses_dice(kind)) {
        const DiceSums d{t.inter, t.pred, t.truth};
        loss += kind == LossKind::log_dice ? -std::log(d.dice()) : 1.0 - d.dice();
    }
    if (uses_bce(kind)) loss += t.bce / t.voxels;
    return loss;
}

void loss_grad(LossKind kind, const float* pred, const float* truth, int64_t n, int64_t voxels, const LossSums& t,
               float* grad) {
    double a = 0, b = 0;
    if (uses_dice(kind)) {
        const DiceSums d{t.inter, t.pred, t.truth};
        // d Dice / d p_k = (2 t_k (P + T + s) - (2 I + s)) / (P + T + s)^2
        const double denom = d.pred + d.truth + kDiceSmooth;
        const double outer = kind == LossKind::log_dice ? -1.0 / d.dice() : -1.0;
        a = outer * 2.0 / denom;                                    // coefficient of t_k
        b = -outer * (2 * d.inter + kDiceSmooth) / (denom * denom);  // constant term
    }
    const bool bce = uses_bce(kind);
    const double inv_voxels = 1.0 / t.voxels;
    const int64_t total = n * voxels;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < total; ++k) {
        double v = a * truth[k] + b;
        if (bce) v += inv_voxels * (double(pred[k]) - truth[k]) / std::max(double(pred[k]) * (1.0 - pred[k]), 1e-12);
        grad[k] = float(v);
    }
}

double loss_sum(LossKind kind, const float* pred, const float* truth, int64_t n, int64_t voxels) {
    return double(n) * loss_from_sums(kind, loss_partial_sums(kind, pred, truth, n, voxels));
}

double loss_sum_and_grad(LossKind kind, const float* pred, const float* truth, int64_t n, int64_t voxels,
                         double grad_scale, float* grad) {
    const LossSums s = loss_partial_sums(kind, pred, truth, n, voxels);
    loss_grad(kind, pred, truth, n, voxels, s, grad);
    const float scale = float(double(n) * grad_scale);
    if (scale != 1.f)
        for (int64_t k = 0; k < n * voxels; ++k) grad[k] *= scale;
    return double(n) * loss_from_sums(kind, s);
}

}  // namespace unet
