#include "unet/nn/optimizer.h"

#include <algorithm>
#include <cmath>

#include "unet/core/check.h"

namespace unet {

void OptimizerConfig::validate() const {
    auto bad = [](const std::string& m) { throw UsageError(m); };
    if (kind != "adam" && kind != "sgd") bad("--optimizer: expected adam or sgd, got '" + kind + "'");
    if (!(beta1 >= 0 && beta1 < 1)) bad("--beta1: expected a value in [0, 1)");
    if (!(beta2 >= 0 && beta2 < 1)) bad("--beta2: expected a value in [0, 1)");
    if (!(epsilon > 0)) bad("--epsilon: expected a positive value");
    if (!(momentum >= 0 && momentum < 1)) bad("--momentum: expected a value in [0, 1)");
    if (nesterov && momentum == 0) bad("--nesterov: needs --momentum > 0");
    if (!(weight_decay >= 0)) bad("--weight_decay: expected a non-negative value");
}

Optimizer::Optimizer(const OptimizerConfig& config, int64_t size) : config_(config), size_(size) {
    config_.validate();
    if (config_.kind == "adam") {
        m_.assign(size_t(size), 0.f);
        v_.assign(size_t(size), 0.f);
        if (config_.amsgrad) vmax_.assign(size_t(size), 0.f);
    } else if (config_.momentum > 0) {
        m_.assign(size_t(size), 0.f);
    }
}

int Optimizer::state_copies() const { return int(!m_.empty()) + int(!v_.empty()) + int(!vmax_.empty()); }

std::vector<std::pair<std::string, AlignedVector<float>*>> Optimizer::state() {
    if (config_.kind == "adam") {
        std::vector<std::pair<std::string, AlignedVector<float>*>> s{{"exp_avg", &m_}, {"exp_avg_sq", &v_}};
        if (config_.amsgrad) s.push_back({"max_exp_avg_sq", &vmax_});
        return s;
    }
    if (!m_.empty()) return {{"momentum_buffer", &m_}};
    return {};
}

void Optimizer::step(float* params, const float* grads, float lr) {
    begin_step();
    update(params, grads, 0, size_, lr);
}

void Optimizer::update(float* params, const float* grads, int64_t begin, int64_t end, float lr) {
    UNET_CHECK(step_ >= 1, "update() before begin_step()");
    UNET_CHECK(begin >= 0 && end <= size_ && begin <= end, "range " << begin << ".." << end);
    const OptimizerConfig& c = config_;
    const float wd = c.weight_decay;
    if (c.kind == "adam") {
        const double bc1 = 1.0 - std::pow(double(c.beta1), double(step_));
        const double bc2 = 1.0 - std::pow(double(c.beta2), double(step_));
        const float step_size = float(lr / bc1);
        const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
        const float b1 = c.beta1, b2 = c.beta2, eps = c.epsilon;
        float *m = m_.data(), *v = v_.data(), *vmax = vmax_.empty() ? nullptr : vmax_.data();
#pragma omp parallel for schedule(static)
        for (int64_t i = begin; i < end; ++i) {
            const float g = grads[i] + wd * params[i];
            m[i] = b1 * m[i] + (1.f - b1) * g;
            v[i] = b2 * v[i] + (1.f - b2) * g * g;
            float vv = v[i];
            if (vmax) vv = vmax[i] = std::max(vmax[i], v[i]);
            params[i] -= step_size * m[i] / (std::sqrt(vv) * inv_sqrt_bc2 + eps);
        }
        return;
    }
    const float mom = c.momentum;
    const bool first = step_ == 1, nesterov = c.nesterov;
    float* buf = m_.empty() ? nullptr : m_.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = begin; i < end; ++i) {
        float g = grads[i] + wd * params[i];
        if (buf) {
            buf[i] = first ? g : mom * buf[i] + g;
            g = nesterov ? g + mom * buf[i] : buf[i];
        }
        params[i] -= lr * g;
    }
}

}  // namespace unet
