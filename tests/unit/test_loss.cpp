// Losses: values against direct formulas, gradients against finite differences, for every kind.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "unet/core/check.h"
#include "unet/core/rng.h"
#include "unet/nn/loss.h"

using namespace unet;

namespace {
struct Case {
    std::vector<float> p, t;
    int64_t n, v;
};
Case random_case(uint64_t seed, int64_t n = 3, int64_t v = 50) {
    Rng r(seed);
    Case c{{}, {}, n, v};
    for (int64_t i = 0; i < n * v; ++i) {
        c.p.push_back(r.uniform(0.05f, 0.95f));
        c.t.push_back(r.uniform() < 0.3f ? 1.f : 0.f);
    }
    return c;
}
}  // namespace

TEST(Loss, ValuesFollowTheDefinitions) {
    const Case c = random_case(1, 1, 40);
    double I = 0, P = 0, T = 0, bce = 0;
    for (int64_t k = 0; k < c.v; ++k) {
        I += c.p[k] * c.t[k];
        P += c.p[k];
        T += c.t[k];
        bce -= c.t[k] * std::log(c.p[k]) + (1 - c.t[k]) * std::log(1 - c.p[k]);
    }
    bce /= double(c.v);
    const double dice = (2 * I + 1) / (P + T + 1);
    EXPECT_NEAR(loss_sum(LossKind::dice, c.p.data(), c.t.data(), 1, 1, c.v), 1 - dice, 1e-6);
    EXPECT_NEAR(loss_sum(LossKind::log_dice, c.p.data(), c.t.data(), 1, 1, c.v), -std::log(dice), 1e-6);
    EXPECT_NEAR(loss_sum(LossKind::bce, c.p.data(), c.t.data(), 1, 1, c.v), bce, 1e-6);
    EXPECT_NEAR(loss_sum(LossKind::dice_bce, c.p.data(), c.t.data(), 1, 1, c.v), 1 - dice + bce, 1e-6);
}

TEST(Loss, DiceIsTakenOverTheWholeBatch) {
    const Case c = random_case(2);
    double I = 0, P = 0, T = 0, bce = 0;
    for (size_t k = 0; k < c.p.size(); ++k) {
        I += c.p[k] * c.t[k];
        P += c.p[k];
        T += c.t[k];
        bce -= c.t[k] * std::log(c.p[k]) + (1 - c.t[k]) * std::log(1 - c.p[k]);
    }
    bce /= double(c.p.size());
    const double dice = (2 * I + 1) / (P + T + 1);
    // loss_sum returns n times the batch loss.
    EXPECT_NEAR(loss_sum(LossKind::dice, c.p.data(), c.t.data(), c.n, 1, c.v), c.n * (1 - dice), 1e-6);
    EXPECT_NEAR(loss_sum(LossKind::log_dice, c.p.data(), c.t.data(), c.n, 1, c.v), -c.n * std::log(dice), 1e-6);
    EXPECT_NEAR(loss_sum(LossKind::bce, c.p.data(), c.t.data(), c.n, 1, c.v), c.n * bce, 1e-6);
    EXPECT_NEAR(loss_sum(LossKind::dice_bce, c.p.data(), c.t.data(), c.n, 1, c.v), c.n * (1 - dice + bce), 1e-6);
}

TEST(Loss, GradientsMatchFiniteDifferences) {
    for (LossKind k : {LossKind::dice, LossKind::log_dice, LossKind::bce, LossKind::dice_bce}) {
        Case c = random_case(3);
        std::vector<float> g(c.p.size());
        const double scale = 0.5;
        loss_sum_and_grad(k, c.p.data(), c.t.data(), c.n, 1, c.v, scale, g.data());
        for (size_t i = 0; i < c.p.size(); i += 7) {
            const float p0 = c.p[i], h = 1e-3f;
            c.p[i] = p0 + h;
            const double lp = loss_sum(k, c.p.data(), c.t.data(), c.n, 1, c.v);
            c.p[i] = p0 - h;
            const double lm = loss_sum(k, c.p.data(), c.t.data(), c.n, 1, c.v);
            c.p[i] = p0;
            const double fd = scale * (lp - lm) / (2 * h);
            EXPECT_NEAR(g[i], fd, 2e-3 * std::max(1.0, std::fabs(fd))) << loss_name(k) << " at " << i;
        }
    }
}

// Region training: three output channels, each its own batch loss, the loss their mean.
TEST(Loss, SeveralChannelsAverageTheirOwnBatchLosses) {
    const int C = 3;
    const Case c = random_case(4, 2, C * 30);  // 2 samples x 3 channels x 30 voxels
    const int64_t v = 30;
    for (LossKind k : {LossKind::dice, LossKind::log_dice, LossKind::bce, LossKind::dice_bce}) {
        double mean = 0;
        for (int ch = 0; ch < C; ++ch) {  // channel ch of both samples, gathered into one array
            std::vector<float> p, t;
            for (int64_t i = 0; i < 2; ++i)
                for (int64_t x = 0; x < v; ++x) {
                    p.push_back(c.p[size_t((i * C + ch) * v + x)]);
                    t.push_back(c.t[size_t((i * C + ch) * v + x)]);
                }
            mean += loss_sum(k, p.data(), t.data(), 2, 1, v) / C;
        }
        EXPECT_NEAR(loss_sum(k, c.p.data(), c.t.data(), 2, C, v), mean, 1e-9) << loss_name(k);
    }
}

TEST(Loss, SeveralChannelGradientsMatchFiniteDifferences) {
    for (LossKind k : {LossKind::dice, LossKind::log_dice, LossKind::bce, LossKind::dice_bce}) {
        Case c = random_case(5, 2, 3 * 20);
        std::vector<float> g(c.p.size());
        loss_sum_and_grad(k, c.p.data(), c.t.data(), 2, 3, 20, 0.5, g.data());
        for (size_t i = 0; i < c.p.size(); i += 5) {
            const float p0 = c.p[i], h = 1e-3f;
            c.p[i] = p0 + h;
            const double lp = loss_sum(k, c.p.data(), c.t.data(), 2, 3, 20);
            c.p[i] = p0 - h;
            const double lm = loss_sum(k, c.p.data(), c.t.data(), 2, 3, 20);
            c.p[i] = p0;
            const double fd = 0.5 * (lp - lm) / (2 * h);
            EXPECT_NEAR(g[i], fd, 2e-3 * std::max(1.0, std::fabs(fd))) << loss_name(k) << " at " << i;
        }
    }
}

TEST(Loss, BceClampsLikePyTorch) {
    const float p[2] = {0.f, 1.f}, t[2] = {1.f, 0.f};
    EXPECT_NEAR(loss_sum(LossKind::bce, p, t, 1, 1, 2), 100.0, 1e-9);
}

TEST(Loss, ParseNamesTheFlag) {
    EXPECT_EQ(parse_loss("log_dice"), LossKind::log_dice);
    try {
        parse_loss("focal");
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("--loss"), std::string::npos);
    }
}
