// Optimizers over the flat parameter / gradient buffers, with PyTorch 1.13's exact update rules
// (so the PyTorch cross-check can compare weights after a step):
//   adam  m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; amsgrad: vmax = max(vmax, v);
//         p -= lr / (1 - b1^t) * m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)
//   sgd   buf = momentum buf + g (buf = g at the first step); nesterov: g + momentum buf;
//         p -= lr * that   (momentum 0: plain SGD)
// weight_decay adds wd * p to g first (L2, as torch.optim does).
//
// A step is begin_step() then update() over one or more disjoint index ranges (a parameter
// server updates bucket by bucket). State is flat, indexed like the parameters, and exposed for
// checkpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "unet/core/aligned.h"

namespace unet {

struct OptimizerConfig {
    std::string kind = "adam";  // adam | sgd
    float beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f;
    bool amsgrad = false;
    float momentum = 0.9f;
    bool nesterov = false;
    float weight_decay = 0.f;
    void validate() const;  // throws UsageError naming the flag
};

class Optimizer {
   public:
    Optimizer(const OptimizerConfig& config, int64_t size);
    const OptimizerConfig& config() const { return config_; }

    void begin_step() { ++step_; }
    void update(float* params, const float* grads, int64_t begin, int64_t end, float lr);
    // begin_step() + update() over everything.
    void step(float* params, const float* grads, float lr);

    int64_t step_count() const { return step_; }
    void set_step_count(int64_t s) { step_ = s; }
    // Named flat state buffers (adam: exp_avg, exp_avg_sq[, max_exp_avg_sq]; sgd: momentum_buffer).
    std::vector<std::pair<std::string, AlignedVector<float>*>> state();
    int state_copies() const;

   private:
    OptimizerConfig config_;
    int64_t size_, step_ = 0;
    AlignedVector<float> m_, v_, vmax_;
};

}  // namespace unet
