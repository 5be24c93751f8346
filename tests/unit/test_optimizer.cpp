// Optimizers against step-by-step re-computations of torch.optim's update rules.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "unet/core/check.h"
#include "unet/nn/lr_schedule.h"
#include "unet/nn/optimizer.h"

using namespace unet;

namespace {
// Reference Adam on one scalar, written from the PyTorch 1.13 documentation.
double adam_ref(double p, const std::vector<double>& grads, double lr, double b1, double b2, double eps, bool ams,
                double wd) {
    double m = 0, v = 0, vmax = 0;
    for (size_t t = 1; t <= grads.size(); ++t) {
        const double g = grads[t - 1] + wd * p;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        vmax = std::max(vmax, v);
        const double bc1 = 1 - std::pow(b1, double(t)), bc2 = 1 - std::pow(b2, double(t));
        p -= lr / bc1 * m / (std::sqrt(ams ? vmax : v) / std::sqrt(bc2) + eps);
    }
    return p;
}
}  // namespace

TEST(Optimizer, AdamAndAmsgradMatchTheReference) {
    for (bool ams : {false, true}) {
        OptimizerConfig c;
        c.amsgrad = ams;
        c.beta2 = 0.99f;
        c.weight_decay = 0.01f;
        Optimizer opt(c, 2);
        float p[2] = {0.5f, -1.f};
        const std::vector<double> g0{0.3, -0.2, 0.05, 0.4}, g1{-1.0, 2.0, -0.5, 0.1};
        for (size_t s = 0; s < g0.size(); ++s) {
            const float g[2] = {float(g0[s]), float(g1[s])};
            opt.step(p, g, 0.01f);
        }
        EXPECT_NEAR(p[0], adam_ref(0.5, g0, 0.01, 0.9, 0.99, 1e-8, ams, 0.01), 1e-6);
        EXPECT_NEAR(p[1], adam_ref(-1.0, g1, 0.01, 0.9, 0.99, 1e-8, ams, 0.01), 1e-6);
        EXPECT_EQ(opt.state().size(), ams ? 3u : 2u);
    }
}

TEST(Optimizer, SgdMomentumAndNesterov) {
    for (bool nesterov : {false, true}) {
        OptimizerConfig c;
        c.kind = "sgd";
        c.momentum = 0.9f;
        c.nesterov = nesterov;
        Optimizer opt(c, 1);
        float p = 1.f;
        double ref = 1, buf = 0;
        const double gs[3] = {0.5, -0.25, 1.0};
        for (int t = 0; t < 3; ++t) {
            const float g = float(gs[t]);
            opt.step(&p, &g, 0.1f);
            buf = t == 0 ? gs[t] : 0.9 * buf + gs[t];
            ref -= 0.1 * (nesterov ? gs[t] + 0.9 * buf : buf);
        }
        EXPECT_NEAR(p, ref, 1e-6);
    }
}

TEST(Optimizer, RangesUpdateIndependently) {
    OptimizerConfig c;
    Optimizer whole(c, 4), parts(c, 4);
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4};
    const float g[4] = {0.1f, -0.2f, 0.3f, -0.4f};
    whole.step(a, g, 0.1f);
    parts.begin_step();
    parts.update(b, g, 2, 4, 0.1f);
    parts.update(b, g, 0, 2, 0.1f);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(a[i], b[i]);
}

TEST(Optimizer, BadSettingsNameTheFlag) {
    OptimizerConfig c;
    c.kind = "rmsprop";
    EXPECT_THROW(c.validate(), UsageError);
    c = OptimizerConfig();
    c.beta2 = 1.0f;
    EXPECT_THROW(c.validate(), UsageError);
}

TEST(LrSchedule, IntelDecayWarmupAndScaling) {
    LrSchedule s;  // Intel defaults: 0.0005, decay_steps 150, lr_fraction 0.25
    EXPECT_FLOAT_EQ(s.at(0), 0.0005f);
    EXPECT_NEAR(s.at(150), 0.0005 * 0.25, 1e-9);
    EXPECT_NEAR(s.at(75), 0.0005 * 0.5, 1e-9);
    s.const_learningrate = true;
    EXPECT_FLOAT_EQ(s.at(1000), 0.0005f);
    s.warmup_steps = 4;
    EXPECT_FLOAT_EQ(s.at(0), 0.0005f / 4);
    EXPECT_FLOAT_EQ(s.at(3), 0.0005f);
    s.scale_by_workers = true;
    s.num_workers = 3;
    EXPECT_FLOAT_EQ(s.at(10), 0.0015f);
    s.decay_steps = 0;
    EXPECT_THROW(s.validate(), UsageError);
}
