#include "unet/tune/scheduler.h"

#include <algorithm>
#include <numeric>

#include "unet/core/check.h"

namespace unet {

void validate(const SchedulerConfig& c) {
    if (c.kind != "fifo" && c.kind != "asha" && c.kind != "median" && c.kind != "pbt")
        throw UsageError("--scheduler: expected fifo, asha, median or pbt, got '" + c.kind + "'");
    if (c.perturbation_interval < 1) throw UsageError("--perturbation_interval: expected at least 1 epoch");
    if (c.grace_period < 1) throw UsageError("--grace_period: expected at least 1 epoch");
    if (c.reduction_factor < 2) throw UsageError("--reduction_factor: expected at least 2");
}

std::vector<int> asha_rungs(const SchedulerConfig& c, int max_epochs) {
    std::vector<int> rungs;
    for (long r = c.grace_period; r < max_epochs; r *= c.reduction_factor) rungs.push_back(int(r));
    return rungs;
}

namespace {

bool asha_continue(const SchedulerConfig& c, const std::vector<std::vector<double>>& h, int trial, int max_epochs) {
    const int epochs = int(h[size_t(trial)].size());
    const std::vector<int> rungs = asha_rungs(c, max_epochs);
    if (std::find(rungs.begin(), rungs.end(), epochs) == rungs.end()) return true;
    const double mine = h[size_t(trial)].back();
    int reached = 0, better = 0;
    for (const auto& other : h) {
        if (int(other.size()) < epochs) continue;
        ++reached;
        if (other[size_t(epochs - 1)] > mine) ++better;
    }
    const int keep = std::max(1, reached / c.reduction_factor);
    return better < keep;
}

bool median_continue(const SchedulerConfig& c, const std::vector<std::vector<double>>& h, int trial) {
    const auto& mine = h[size_t(trial)];
    const size_t epochs = mine.size();
    if (int(epochs) < c.grace_period) return true;
    std::vector<double> means;
    for (size_t t = 0; t < h.size(); ++t) {
        if (int(t) == trial || h[t].size() < epochs) continue;
        means.push_back(std::accumulate(h[t].begin(), h[t].begin() + long(epochs), 0.0) / double(epochs));
    }
    if (int(means.size()) < c.min_peers) return true;
    std::sort(means.begin(), means.end());
    const size_t m = means.size();
    const double median = m % 2 ? means[m / 2] : 0.5 * (means[m / 2 - 1] + means[m / 2]);
    return *std::max_element(mine.begin(), mine.end()) >= median;
}

}  // namespace

bool should_continue(const SchedulerConfig& c, const std::vector<std::vector<double>>& histories, int trial,
                     int max_epochs) {
    if (histories[size_t(trial)].empty()) return true;
    if (c.kind == "asha") return asha_continue(c, histories, trial, max_epochs);
    if (c.kind == "median") return median_continue(c, histories, trial);
    if (c.kind == "pbt") {
        const int epochs = int(histories[size_t(trial)].size());
        return epochs >= max_epochs || epochs % c.perturbation_interval != 0;
    }
    return true;
}

}  // namespace unet
