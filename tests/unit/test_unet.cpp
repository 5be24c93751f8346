// Whole-network tests: shapes, parameter naming and count, layouts (reorders only at the input),
// a finite-difference check through the full UNet, and the overfitting test the issue asks for.
#include <gtest/gtest.h>

#include <dnnl.hpp>

#include <cmath>

#include "unet/core/check.h"
#include "unet/core/rng.h"
#include "unet/nn/loss.h"
#include "unet/nn/lr_schedule.h"
#include "unet/nn/optimizer.h"
#include "unet/nn/unet.h"
#include "unet/data/toy_data.h"
#include "unet/parallel/comm.h"
#include "unet/train/train_step.h"

using namespace unet;

namespace {

// One training step in this process alone (the local exchange), as the trainer takes it.
StepResult local_step(UNet& net, Optimizer& opt, const LrSchedule& lr, LossKind loss, const Batch& b, int64_t step) {
    LocalExchange exchange(opt, net.store().params(), net.store().grads());
    ControlChannel control(Comm::world(), 0, 0);
    StepContext c{net, exchange, control, loss, {}};
    StepControl ctl;
    return train_step(c, b, step, lr.at(step), ctl);
}

UNetConfig small_config(int dims, Upsampling up, NormKind norm, int64_t filters = 4, int depth = 2) {
    UNetConfig c;
    c.dims = dims;
    c.in_channels = 2;
    c.base_filters = filters;
    c.depth = depth;
    c.upsampling = up;
    c.norm = norm;
    c.norm_groups = 2;
    c.seed = 7;
    return c;
}

Dims spatial_for(int dims, int64_t s) { return dims == 2 ? Dims{s, s} : Dims{s, s, s}; }

}  // namespace

TEST(UNet, ParameterCountMatchesTheArchitecture) {
    // 2D, in 4, filters 32..512, depth 4, transposed: the standard `2d` benchmark network.
    UNetConfig c = small_config(2, Upsampling::transposed, NormKind::none, 32, 4);
    c.in_channels = 4;
    UNet net(c);
    EXPECT_EQ(net.store().parameter_count(), 7760385);
    EXPECT_GE(net.store().find("enc0.conv1.weight"), 0);
    EXPECT_GE(net.store().find("up0.weight"), 0);
    EXPECT_EQ(net.store().view(net.store().find("up0.weight")).shape, (Dims{64, 32, 2, 2}));
    EXPECT_EQ(net.store().view(net.store().find("dec0.conv1.weight")).shape, (Dims{32, 64, 3, 3}));
    EXPECT_GE(net.store().find("out.bias"), 0);
}

TEST(UNet, ResamplingDecoderTakesTheWiderConcat) {
    UNet net(small_config(3, Upsampling::linear, NormKind::batch, 8, 2));
    EXPECT_LT(net.store().find("up0.weight"), 0);
    // dec1 sees up(enc2: 32 ch) ++ skip(16 ch)
    EXPECT_EQ(net.store().view(net.store().find("dec1.conv1.weight")).shape, (Dims{16, 48, 3, 3, 3}));
    EXPECT_GE(net.store().find_buffer("enc0.norm1.running_var"), 0);
}

TEST(UNet, ImpossibleModelsAreUsageErrors) {
    UNetConfig c = small_config(2, Upsampling::transposed, NormKind::none);
    c.depth = 0;
    EXPECT_THROW(c.validate(), UsageError);
    c = small_config(2, Upsampling::transposed, NormKind::none);
    c.base_filters = 0;
    EXPECT_THROW(c.validate(), UsageError);
    c = small_config(2, Upsampling::transposed, NormKind::none, 4, 3);
    EXPECT_THROW(c.validate({20, 24}), UsageError);  // 20 is not a multiple of 8
    EXPECT_THROW(c.validate({16, 16, 16}), UsageError);  // 3 sizes for a 2D model
    EXPECT_NO_THROW(c.validate({16, 24}));
    EXPECT_THROW(parse_norm("layer"), UsageError);
    EXPECT_THROW(parse_upsampling("bicubic"), UsageError);
}

TEST(UNet, OnlyTheInputIsReordered) {
    for (int dims : {2, 3})
        for (int64_t f : {8, 16}) {
            UNet net(small_config(dims, Upsampling::transposed, NormKind::none, f, 2));
            EXPECT_EQ(net.input_reorders(2, spatial_for(dims, 16)), 1) << dims << "D filters " << f;
        }
}

TEST(UNet, OutputsAreProbabilitiesOfTheRightShape) {
    for (int dims : {2, 3}) {
        UNet net(small_config(dims, Upsampling::nearest, NormKind::group));
        const Dims sp = spatial_for(dims, 8);
        const Batch b = make_toy_batch(3, 2, sp, 1);
        const float* y = net.forward(b.images.data(), 3, sp, true);
        for (int64_t i = 0; i < 3 * product(sp); ++i) {
            ASSERT_GT(y[i], 0.f);
            ASSERT_LT(y[i], 1.f);
        }
    }
}

// Directional finite difference of the loss through the whole network: L(p + h d) - L(p - h d)
// against 2 h <grad, d>, for a random direction d over all parameters.
TEST(UNet, WholeNetworkGradientMatchesFiniteDifferences) {
    for (int dims : {2, 3})
        for (Upsampling up : {Upsampling::transposed, Upsampling::linear})
            for (NormKind norm : {NormKind::none, NormKind::group}) {
                UNetConfig c = small_config(dims, up, norm, 4, 1);
                UNet net(c);
                const Dims sp = spatial_for(dims, 8);
                const Batch b = make_toy_batch(2, 2, sp, 3);
                const int64_t V = product(sp);
                std::vector<float> grad(size_t(2 * V));
                auto loss_at = [&]() {
                    const float* y = net.forward(b.images.data(), 2, sp, true);
                    return loss_sum(LossKind::dice_bce, y, b.masks.data(), 2, 1, V);
                };
                const float* y = net.forward(b.images.data(), 2, sp, true);
                loss_sum_and_grad(LossKind::dice_bce, y, b.masks.data(), 2, 1, V, 1.0, grad.data());
                net.backward(grad.data());
                ParamStore& s = net.store();
                std::vector<float> g(s.grads(), s.grads() + s.size()), p0(s.params(), s.params() + s.size());
                Rng rng(11);
                std::vector<float> d(size_t(s.size()));
                double dot = 0;
                for (int64_t i = 0; i < s.size(); ++i) {
                    d[size_t(i)] = rng.normal();
                    dot += double(d[size_t(i)]) * g[size_t(i)];
                }
                // Small enough that few ReLU / max-pool kinks are crossed (1e-3 crosses some), large
                // enough for float forward passes.
                const float h = 2e-4f;
                for (int64_t i = 0; i < s.size(); ++i) s.params()[i] = p0[size_t(i)] + h * d[size_t(i)];
                const double lp = loss_at();
                for (int64_t i = 0; i < s.size(); ++i) s.params()[i] = p0[size_t(i)] - h * d[size_t(i)];
                const double lm = loss_at();
                const double fd = (lp - lm) / (2 * h);
                EXPECT_NEAR(fd, dot, 2e-2 * std::max(1.0, std::fabs(dot)))
                    << dims << "D " << upsampling_name(up) << " " << norm_name(norm);
            }
}

// The convergence test: a tiny UNet overfits 2 fixed samples to Dice > 0.95 within a
// bounded number of steps, in 2D and in 3D.
TEST(UNet, TinyNetworkOverfitsTwoSamples) {
    for (int dims : {2, 3}) {
        UNetConfig c = small_config(dims, Upsampling::transposed, NormKind::none, 8, 2);
        UNet net(c);
        OptimizerConfig oc;
        Optimizer opt(oc, net.store().size());
        LrSchedule lr;
        lr.learningrate = 3e-3f;
        lr.const_learningrate = true;
        const Dims sp = spatial_for(dims, dims == 2 ? 32 : 16);
        const Batch b = make_toy_batch(2, 2, sp, 5);
        double dice = 0;
        int steps = 0;
        for (; steps < 300 && dice <= 0.95; ++steps)
            dice = local_step(net, opt, lr, LossKind::dice, b, steps).dice;
        EXPECT_GT(dice, 0.95) << dims << "D after " << steps << " steps";
        const MetricSums m = evaluate(net, LossKind::dice, b.images.data(), b.masks.data(), 2, sp, 2);
        EXPECT_GT(m.mean_dice(), 0.9) << dims << "D in eval mode";
    }
}

TEST(UNet, DivergenceNamesTheStep) {
    UNet net(small_config(2, Upsampling::transposed, NormKind::none));
    OptimizerConfig oc;
    Optimizer opt(oc, net.store().size());
    LrSchedule lr;
    const Dims sp{8, 8};
    Batch b = make_toy_batch(2, 2, sp, 5);
    b.masks[3] = std::nanf("");  // a corrupt label reaches the loss directly
    try {
        local_step(net, opt, lr, LossKind::dice_bce, b, 17);
        FAIL() << "no DivergenceError";
    } catch (const DivergenceError& e) {
        EXPECT_NE(std::string(e.what()).find("step 17"), std::string::npos) << e.what();
    }
}

// Winograd changes rounding, not results: outputs and gradients stay close to the direct ones,
// and the network still learns.
TEST(UNet, WinogradAgreesWithDirectConvolutions) {
    // oneDNN 2.6.3 has Winograd kernels for AVX-512 only; elsewhere every layer stays direct.
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    if (isa != dnnl::cpu_isa::avx512_core && isa != dnnl::cpu_isa::avx512_core_vnni &&
        isa != dnnl::cpu_isa::avx512_core_bf16 && isa != dnnl::cpu_isa::avx512_core_amx)
        GTEST_SKIP() << "SKIPPED: this CPU has no AVX-512, where oneDNN 2.6.3 keeps its Winograd convolutions";
    for (NormKind norm : {NormKind::none, NormKind::batch}) {
        UNetConfig c = small_config(2, Upsampling::transposed, norm, 16, 2);
        UNet direct(c);
        c.winograd = true;
        UNet wino(c);
        const Dims sp{32, 32};
        EXPECT_GT(wino.winograd_layers(2, sp), 0);
        const Batch b = make_toy_batch(2, 2, sp, 3);
        const int64_t V = product(sp);
        const float* y1 = direct.forward(b.images.data(), 2, sp, true);
        std::vector<float> out_direct(y1, y1 + 2 * V);
        const float* y2 = wino.forward(b.images.data(), 2, sp, true);
        double max_diff = 0;
        for (int64_t i = 0; i < 2 * V; ++i) max_diff = std::max(max_diff, double(std::fabs(y2[i] - out_direct[size_t(i)])));
        EXPECT_LT(max_diff, 1e-3) << norm_name(norm);
        std::vector<float> g(size_t(2 * V));
        loss_sum_and_grad(LossKind::dice, out_direct.data(), b.masks.data(), 2, 1, V, 0.5, g.data());
        direct.forward(b.images.data(), 2, sp, true);
        direct.backward(g.data());
        wino.backward(g.data());
        double scale = 0, err = 0;
        for (int64_t i = 0; i < direct.store().size(); ++i) {
            scale = std::max(scale, double(std::fabs(direct.store().grads()[i])));
            err = std::max(err, double(std::fabs(direct.store().grads()[i] - wino.store().grads()[i])));
        }
        EXPECT_LT(err, 1e-2 * scale) << norm_name(norm) << ": gradient error " << err << " of " << scale;
    }
}

TEST(UNet, WinogradNetworkOverfitsTwoSamples) {
    UNetConfig c = small_config(2, Upsampling::transposed, NormKind::none, 16, 2);
    c.winograd = true;
    UNet net(c);
    OptimizerConfig oc;
    Optimizer opt(oc, net.store().size());
    LrSchedule lr;
    lr.learningrate = 3e-3f;
    lr.const_learningrate = true;
    const Dims sp{32, 32};
    const Batch b = make_toy_batch(2, 2, sp, 5);
    double dice = 0;
    int steps = 0;
    for (; steps < 300 && dice <= 0.95; ++steps)
        dice = local_step(net, opt, lr, LossKind::dice, b, steps).dice;
    EXPECT_GT(dice, 0.95) << "after " << steps << " steps";
}

// Gradients reported ready during backward must already hold their final values: the parameter
// server exchange sends them while the rest of backward runs.
TEST(UNet, GradientsReportedReadyAreFinal) {
    for (Upsampling up : {Upsampling::transposed, Upsampling::linear}) {
        UNet net(small_config(2, up, NormKind::batch, 4, 2));
        const Dims spatial{8, 8};
        const int64_t n = 2, voxels = product(spatial);
        std::vector<float> x(size_t(n * net.config().in_channels * voxels)), dy(size_t(n * voxels));
        Rng rng(3);
        for (auto& v : x) v = rng.normal();
        for (auto& v : dy) v = rng.normal();
        net.forward(x.data(), n, spatial, true);
        ParamStore& store = net.store();
        std::fill(store.grads(), store.grads() + store.size(), 1e30f);  // stale values must not survive
        std::vector<std::pair<int64_t, std::vector<float>>> seen;
        net.backward(dy.data(), [&](int64_t from) {
            seen.emplace_back(from, std::vector<float>(store.grads() + from, store.grads() + store.size()));
        });
        ASSERT_FALSE(seen.empty());
        EXPECT_EQ(seen.back().first, 0);
        for (size_t k = 0; k < seen.size(); ++k) {
            if (k > 0) {
                EXPECT_LT(seen[k].first, seen[k - 1].first);
            }
            const int64_t from = seen[k].first;
            for (int64_t i = from; i < store.size(); ++i)
                ASSERT_EQ(seen[k].second[size_t(i - from)], store.grads()[i]) << "offset " << i << " call " << k;
        }
    }
}

// unet_predict's forwards run on an inference plan (no gradient buffers, forward tensors recycled
// through three slots); it must give exactly what the training plan gives in eval mode, for every
// norm and up-sampling, 2D and 3D, with dropout (off in eval) and a deeper network.
TEST(UNet, InferencePlanEqualsTheTrainingPlanInEvalMode) {
    struct Case {
        int dims;
        Upsampling up;
        NormKind norm;
        int depth;
        float dropout;
    };
    for (const Case k : {Case{2, Upsampling::transposed, NormKind::none, 2, 0.f},
                         Case{2, Upsampling::linear, NormKind::batch, 3, 0.25f},
                         Case{3, Upsampling::transposed, NormKind::group, 2, 0.f},
                         Case{3, Upsampling::nearest, NormKind::none, 2, 0.25f},
                         Case{3, Upsampling::transposed, NormKind::batch, 2, 0.f}}) {
        UNetConfig c = small_config(k.dims, k.up, k.norm, 4, k.depth);
        c.dropout = k.dropout;
        const Dims sp = k.dims == 2 ? Dims{16, 24} : Dims{8, 16, 12};
        const Batch b = make_toy_batch(2, c.in_channels, sp, 3);
        const int64_t n = 2 * product(sp);
        UNet net(c);
        const float* p = net.forward(b.images.data(), 2, sp, false);  // no training plan yet: inference
        const std::vector<float> inference(p, p + n);
        net.estimate_memory(2, sp, 2);  // builds the training plan (a training forward would move batch norm's statistics)
        const float* q = net.forward(b.images.data(), 2, sp, false);  // now on the training plan
        float worst = 0.f;
        for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(q[i] - inference[size_t(i)]));
        EXPECT_LE(worst, 1e-6f) << "dims " << k.dims << " norm " << norm_name(k.norm) << " up "
                                << upsampling_name(k.up);
    }
}
