#include "unet/train/trainer.h"

#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <sstream>

#include "unet/core/check.h"
#include "unet/core/rng.h"
#include "unet/train/toy_data.h"

namespace unet {

using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_rss_mib() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

StepResult train_step(UNet& model, Optimizer& opt, const LrSchedule& schedule, LossKind loss,
                      const float* images, const float* masks, int64_t n, const Dims& spatial, int64_t step,
                      std::vector<float>& grad_scratch) {
    const int64_t voxels = product(spatial) * model.config().out_channels;
    const float* pred = model.forward(images, n, spatial, true, uint64_t(step));
    grad_scratch.resize(size_t(n * voxels));
    const double loss_total = loss_sum_and_grad(loss, pred, masks, n, voxels, 1.0 / double(n), grad_scratch.data());
    if (!std::isfinite(loss_total))
        throw DivergenceError("loss is " + std::string(std::isnan(loss_total) ? "NaN" : "Inf") + " at step " +
                              std::to_string(step) + "; lower --learningrate or check the data");
    MetricSums m;
    for (int64_t i = 0; i < n; ++i) m.add(confusion(pred + i * voxels, masks + i * voxels, voxels));
    model.backward(grad_scratch.data());
    opt.step(model.store().params(), model.store().grads(), schedule.at(step));
    return {loss_total / double(n), m.mean_dice()};
}

MetricSums evaluate(UNet& model, LossKind loss, const float* images, const float* masks, int64_t n,
                    const Dims& spatial, int64_t batch) {
    const int64_t voxels = product(spatial) * model.config().out_channels;
    const int64_t in_stride = product(spatial) * model.config().in_channels;
    MetricSums sums;
    for (int64_t i = 0; i < n; i += batch) {
        const int64_t b = std::min(batch, n - i);
        const float* pred = model.forward(images + i * in_stride, b, spatial, false);
        sums.loss += loss_sum(loss, pred, masks + i * voxels, b, voxels);
        for (int64_t k = 0; k < b; ++k) sums.add(confusion(pred + k * voxels, masks + (i + k) * voxels, voxels));
    }
    return sums;
}

std::string BenchmarkResult::json(const TrainOptions& o) const {
    std::ostringstream os;
    os.precision(4);
    os << "{\"program\":\"unet_train\",\"dims\":" << o.model.dims << ",\"input_size\":[";
    for (size_t i = 0; i < o.input_size.size(); ++i) os << (i ? "," : "") << o.input_size[i];
    os << "],\"in_channels\":" << o.model.in_channels << ",\"filters\":" << o.model.base_filters
       << ",\"depth\":" << o.model.depth << ",\"upsampling\":\"" << upsampling_name(o.model.upsampling)
       << "\",\"norm\":\"" << norm_name(o.model.norm) << "\",\"conv_algorithm\":\""
       << (o.model.winograd ? "winograd" : "direct") << "\",\"batch_size\":" << o.batch_size << ",\"steps\":" << o.steps
       << ",\"threads\":" << threads << std::fixed << ",\"step_ms\":" << step_ms << ",\"samples_per_s\":" << samples_per_s
       << ",\"gflop_per_sample\":" << gflop_per_sample << ",\"gflops\":" << gflops << ",\"peak_rss_mib\":" << peak_rss_mib
       << "}";
    return os.str();
}

static void print_model_summary(UNet& model, const TrainOptions& o, int state_copies) {
    const MemoryEstimate e = model.estimate_memory(o.batch_size, o.input_size, state_copies);
    const double mib = 1024.0 * 1024.0;
    std::fprintf(stderr,
                 "model: %dD UNet, filters %lld..%lld, depth %d, %s up-sampling, norm %s, %d Winograd convolutions: "
                 "%lld parameters\n"
                 "memory estimate for batch %lld: activations %.0f MiB + parameters %.0f MiB + optimizer %.0f MiB"
                 " = %.0f MiB\n",
                 o.model.dims, (long long)o.model.base_filters, (long long)o.model.filters(o.model.depth), o.model.depth,
                 upsampling_name(o.model.upsampling), norm_name(o.model.norm),
                 model.winograd_layers(o.batch_size, o.input_size), (long long)model.store().parameter_count(), (long long)o.batch_size, double(e.activation_bytes) / mib,
                 double(e.parameter_bytes) / mib, double(e.optimizer_bytes) / mib, double(e.total()) / mib);
}

BenchmarkResult run_benchmark(const TrainOptions& o) {
    UNet model(o.model);
    Optimizer opt(o.optimizer, model.store().size());
    print_model_summary(model, o, opt.state_copies());
    const int64_t n = o.batch_size;
    Rng rng(o.seed);
    std::vector<float> images(size_t(n * o.model.in_channels * product(o.input_size)));
    std::vector<float> masks(size_t(n * o.model.out_channels * product(o.input_size)));
    for (auto& v : images) v = rng.normal();
    for (auto& v : masks) v = rng.uniform() < 0.2f ? 1.f : 0.f;
    std::vector<float> scratch;
    for (int64_t s = 0; s < o.warmup_steps_bench; ++s)
        train_step(model, opt, o.schedule, o.loss, images.data(), masks.data(), n, o.input_size, s, scratch);
    const auto t0 = Clock::now();
    for (int64_t s = 0; s < o.steps; ++s)
        train_step(model, opt, o.schedule, o.loss, images.data(), masks.data(), n, o.input_size, s, scratch);
    const double secs = seconds_since(t0);
    BenchmarkResult r;
    r.threads = omp_get_max_threads();
    r.step_ms = 1000.0 * secs / double(o.steps);
    r.samples_per_s = double(n * o.steps) / secs;
    r.gflop_per_sample = model.train_flops_per_sample(o.input_size) / 1e9;
    r.gflops = r.samples_per_s * r.gflop_per_sample;
    r.peak_rss_mib = peak_rss_mib();
    return r;
}

double run_local_training(const TrainOptions& o) {
    UNet model(o.model);
    Optimizer opt(o.optimizer, model.store().size());
    print_model_summary(model, o, opt.state_copies());
    // Generated data: 80% train, 20% validation, different seeds so no sample is in both.
    const int64_t n_val = std::max<int64_t>(1, o.toy_samples / 5);
    const ToyBatch train = make_toy_batch(o.toy_samples, o.model.in_channels, o.input_size, o.seed);
    const ToyBatch val = make_toy_batch(n_val, o.model.in_channels, o.input_size, o.seed + 1);
    const int64_t steps_per_epoch = std::max<int64_t>(1, train.n / o.batch_size);
    std::fprintf(stderr, "data: %lld generated training samples, %lld validation samples, %lld steps per epoch\n",
                 (long long)train.n, (long long)val.n, (long long)steps_per_epoch);
    std::vector<float> scratch;
    ToyBatch batch;
    int64_t step = 0;
    double val_dice = 0;
    const auto t_start = Clock::now();
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
        // One shuffled order per epoch from (seed, epoch).
        std::vector<int64_t> order(size_t(train.n));
        std::iota(order.begin(), order.end(), 0);
        Rng rng(o.seed ^ (uint64_t(epoch + 1) * 0x9E3779B97F4A7C15ull));
        for (int64_t i = train.n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng.below(i + 1))]);
        double loss_sum = 0, dice_sum = 0;
        const auto t_epoch = Clock::now();
        for (int64_t k = 0; k < steps_per_epoch; ++k, ++step) {
            std::vector<int64_t> idx(order.begin() + k * o.batch_size,
                                     order.begin() + std::min<int64_t>(train.n, (k + 1) * o.batch_size));
            if (int64_t(idx.size()) < o.batch_size)  // fewer samples than one batch: wrap around
                for (int64_t j = int64_t(idx.size()); j < o.batch_size; ++j) idx.push_back(order[size_t(j % train.n)]);
            take_samples(train, idx, batch);
            const StepResult r = train_step(model, opt, o.schedule, o.loss, batch.images.data(), batch.masks.data(),
                                            batch.n, o.input_size, step, scratch);
            loss_sum += r.loss;
            dice_sum += r.dice;
            if ((step + 1) % o.print_every == 0)
                std::fprintf(stderr, "step %lld  loss %.4f  dice %.4f  lr %.3g  %.1f samples/s\n", (long long)step + 1,
                             r.loss, r.dice, o.schedule.at(step),
                             double((k + 1) * o.batch_size) / seconds_since(t_epoch));
            if (o.steps > 0 && step + 1 >= o.steps) break;
        }
        const int64_t done = std::min<int64_t>(steps_per_epoch, step - epoch * steps_per_epoch);
        const MetricSums v = evaluate(model, o.loss, val.images.data(), val.masks.data(), val.n, o.input_size, o.batch_size);
        val_dice = v.mean_dice();
        std::printf("epoch %d/%d  train loss %.4f dice %.4f  val loss %.4f dice %.4f sensitivity %.4f specificity %.4f  %.1fs\n",
                    epoch + 1, o.epochs, loss_sum / double(std::max<int64_t>(1, done)),
                    dice_sum / double(std::max<int64_t>(1, done)), v.mean_loss(), val_dice, v.mean_sensitivity(),
                    v.mean_specificity(), seconds_since(t_epoch));
        std::fflush(stdout);
        if (o.steps > 0 && step >= o.steps) break;
    }
    std::printf("done: %lld steps in %.1fs, validation Dice %.4f\n", (long long)step, seconds_since(t_start), val_dice);
    return val_dice;
}

}  // namespace unet
