#include "unet/train/train_step.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "unet/core/check.h"

namespace unet {

namespace {

using Clock = std::chrono::steady_clock;

// Seconds since the last call, added to `into`.
struct Lap {
    Clock::time_point t = Clock::now();
    void operator()(double& into) {
        const auto now = Clock::now();
        into += std::chrono::duration<double>(now - t).count();
        t = now;
    }
};

// The whole batch's loss from the control message's totals (the channels with voxels are the
// model's); every rank throws alike.
double batch_loss(LossKind loss, const StepControl& ctl, int64_t step, std::vector<LossSums>& sums) {
    sums.clear();
    for (int c = 0; c < kMaxMetricChannels; ++c) {
        LossSums s;
        std::copy_n(ctl.sums.begin() + kLossSlot + c * LossSums::kCount, LossSums::kCount, s.data());
        if (s.voxels > 0) sums.push_back(s);
    }
    const double value = loss_from_sums(loss, sums);
    if (!std::isfinite(value))
        throw DivergenceError("loss is " + std::string(std::isnan(value) ? "NaN" : "Inf") + " at step " +
                              std::to_string(step) + "; lower --learningrate or check the data");
    return value;
}

// The batch's mean Dice per channel and over the `channels` channels.
void batch_dice(const StepControl& ctl, size_t channels, StepResult& r) {
    const double samples = ctl.sums[kDiceSlot + kMaxMetricChannels];
    r.dice = 0;
    for (size_t c = 0; c < channels; ++c) {
        r.channel_dice[c] = samples > 0 ? ctl.sums[kDiceSlot + c] / samples : 0;
        r.dice += r.channel_dice[c] / double(channels);
    }
}

}  // namespace

StepResult train_step(StepContext& c, const Batch& batch, int64_t step, float lr, StepControl& ctl) {
    StepResult result;
    Lap lap;
    const int channels = int(c.model.config().out_channels);
    const int64_t n = batch.n, voxels = product(batch.spatial);
    const float* pred = c.model.forward(batch.images.data(), n, batch.spatial, true, uint64_t(step));
    const float* masks = batch.masks.data();
    std::vector<LossSums> sums = loss_partial_sums(c.loss, pred, masks, n, channels, voxels);
    const MetricSums m = sample_metrics(pred, masks, n, channels, voxels);
    for (int k = 0; k < channels; ++k) {
        std::copy_n(sums[size_t(k)].data(), LossSums::kCount, ctl.sums.begin() + kLossSlot + k * LossSums::kCount);
        ctl.sums[size_t(kDiceSlot + k)] = m.dice[size_t(k)];
    }
    ctl.sums[kDiceSlot + kMaxMetricChannels] = double(m.samples);
    lap(result.compute_s);
    // The loss of the whole batch (Dice is not a sum over samples) is known only after every
    // rank's forward: the step's one control message.
    c.control.exchange(step, ctl);
    lap(result.comm_s);
    result.loss = batch_loss(c.loss, ctl, step, sums);
    batch_dice(ctl, sums.size(), result);
    c.scratch.resize(size_t(n * channels * voxels));
    loss_grad(c.loss, pred, masks, n, channels, voxels, sums, c.scratch.data());
    // Each rank holds the derivative of the global batch loss through its own samples; their sum
    // is the full gradient. Buckets leave while backward runs.
    c.model.backward(c.scratch.data(), [&](int64_t from) { c.exchange.push(from); });
    lap(result.compute_s);
    const ExchangeTimes x = c.exchange.wait(step, lr);
    result.comm_s += x.wait_s;
    result.update_s += x.update_s;
    return result;
}

StepResult serve_step(PsShard& shard, ControlChannel& control, LossKind loss, int64_t step, float lr, double timeout_s,
                      StepControl& ctl) {
    StepResult result;
    Lap lap;
    control.exchange(step, ctl);
    lap(result.comm_s);
    std::vector<LossSums> sums;
    result.loss = batch_loss(loss, ctl, step, sums);
    batch_dice(ctl, sums.size(), result);
    const ExchangeTimes x = shard.serve(step, lr, timeout_s);
    result.comm_s += x.wait_s;
    result.update_s += x.update_s;
    return result;
}

MetricSums sample_metrics(const float* pred, const float* truth, int64_t n, int channels, int64_t voxels) {
    MetricSums m(channels);
    Confusion c[kMaxMetricChannels];
    for (int64_t i = 0; i < n; ++i) {
        for (int k = 0; k < channels; ++k) {
            const int64_t at = (i * channels + k) * voxels;
            c[k] = confusion(pred + at, truth + at, voxels);
        }
        m.add(c);
    }
    return m;
}

const float* forward_padded(UNet& model, const float* images, int64_t n, const Dims& spatial, int64_t batch,
                            std::vector<float>& padded) {
    if (n == batch) return model.forward(images, batch, spatial, false);
    UNET_CHECK(n > 0 && n < batch, "forward_padded: " << n << " samples for a batch of " << batch);
    const int64_t in_stride = product(spatial) * model.config().in_channels;
    padded.assign(size_t(batch * in_stride), 0.f);
    std::copy_n(images, n * in_stride, padded.begin());
    return model.forward(padded.data(), batch, spatial, false);
}

MetricSums evaluate(UNet& model, LossKind loss, const float* images, const float* masks, int64_t n,
                    const Dims& spatial, int64_t batch) {
    const int channels = int(model.config().out_channels);
    const int64_t voxels = product(spatial), out_stride = channels * voxels;
    const int64_t in_stride = voxels * model.config().in_channels;
    MetricSums sums(channels);
    std::vector<float> padded;
    for (int64_t i = 0; i < n; i += batch) {
        const int64_t b = std::min(batch, n - i);
        const float* pred = forward_padded(model, images + i * in_stride, b, spatial, batch, padded);
        const float* truth = masks + i * out_stride;
        sums.merge(sample_metrics(pred, truth, b, channels, voxels));
        sums.loss += loss_sum(loss, pred, truth, b, channels, voxels);
    }
    return sums;
}

}  // namespace unet
