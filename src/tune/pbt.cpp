#include "unet/tune/pbt.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <stdexcept>

#include "unet/core/check.h"

namespace fs = std::filesystem;

namespace unet {

namespace {

// The round's generator: seeded by (seed, round) alone, mt19937_64's sequence is fixed by the standard.
struct RoundRng {
    std::mt19937_64 gen;
    RoundRng(uint64_t seed, int round, int member)
        : gen(seed * 0x9E3779B97F4A7C15ull ^ (uint64_t(round) + 1) * 0xBF58476D1CE4E5B9ull ^
              (uint64_t(member) + 7) * 0x94D049BB133111EBull) {}
    double unit() { return double(gen() >> 11) * 0x1.0p-53; }
    uint64_t below(uint64_t n) { return uint64_t(unit() * double(n)); }
};

}  // namespace

int pbt_quantile_count(int n, double quantile) {
    if (n < 2) return 0;
    const int k = int(std::ceil(double(n) * quantile - 1e-9));
    return std::max(1, std::min(k, n / 2));
}

std::vector<PbtExploit> pbt_exploit(const std::vector<PbtMember>& members, const PbtConfig& c, int round) {
    std::vector<const PbtMember*> alive;
    for (const PbtMember& m : members)
        if (!m.failed) alive.push_back(&m);
    std::stable_sort(alive.begin(), alive.end(), [](const PbtMember* a, const PbtMember* b) {
        return a->score != b->score ? a->score > b->score : a->id < b->id;
    });
    const int k = pbt_quantile_count(int(members.size()), c.quantile);
    std::vector<int> top, bottom;
    for (int i = 0; i < std::min<int>(k, int(alive.size())); ++i) top.push_back(alive[size_t(i)]->id);
    if (top.empty()) return {};
    for (const PbtMember& m : members)
        if (m.failed) bottom.push_back(m.id);
    // The k worst of the others, never a top member.
    const int from = std::max<int>(int(top.size()), int(alive.size()) - k);
    for (int i = from; i < int(alive.size()); ++i) bottom.push_back(alive[size_t(i)]->id);
    std::sort(bottom.begin(), bottom.end());
    RoundRng rng(c.seed, round, -1);
    std::vector<PbtExploit> out;
    for (int r : bottom) out.push_back({r, top[size_t(rng.below(top.size()))]});
    return out;
}

TrialParams pbt_explore(const SearchSpace& space, const TrialParams& donor, const PbtConfig& c, int round,
                        int recipient) {
    RoundRng rng(c.seed, round, recipient);
    // One fresh sample of the whole space, for the values that are resampled.
    const TrialParams fresh = random_trials(space, 1, rng.gen()).front();
    TrialParams out = donor;
    for (size_t i = 0; i < space.params.size() && i < out.size(); ++i) {
        const Hyperparameter& h = space.params[i];
        std::string& v = out[i].second;
        const bool resample = rng.unit() < 0.25;
        const double factor = rng.unit() < 0.5 ? 0.8 : 1.2;
        if (resample) {
            v = fresh[i].second;
            continue;
        }
        switch (h.kind) {
            case Hyperparameter::Kind::choice:
                break;
            case Hyperparameter::Kind::uniform:
            case Hyperparameter::Kind::loguniform:
                v = format_in_bounds(std::min(h.hi, std::max(h.lo, std::stod(v) * factor)), h.lo, h.hi);
                break;
            case Hyperparameter::Kind::range: {
                const int64_t last = h.first + h.step * ((h.last - h.first) / h.step);
                const int64_t old = std::stoll(v);
                int64_t k = int64_t(std::llround((double(old) * factor - double(h.first)) / double(h.step)));
                int64_t x = h.first + h.step * k;
                if (x == old) x += factor > 1 ? h.step : -h.step;  // x1.2 of a small integer rounds back: one step
                v = std::to_string(std::min(last, std::max(h.first, x)));
                break;
            }
        }
    }
    return out;
}

uint64_t pbt_copy_checkpoint(const std::string& from_dir, const std::string& to_dir) {
    uint64_t bytes = 0;
    for (const char* name : {"checkpoint_latest.h5", "checkpoint_best.h5"}) {
        const std::string from = from_dir + "/" + name, to = to_dir + "/" + name, tmp = to + ".pbt";
        std::error_code ec;
        if (!fs::exists(from, ec)) {
            if (name == std::string("checkpoint_latest.h5")) throw std::runtime_error("pbt exploit: no " + from);
            fs::remove(to, ec);  // the donor has none: neither has the copy
            continue;
        }
        fs::create_directories(to_dir, ec);
        fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
        if (!ec) fs::rename(tmp, to, ec);
        if (ec) throw std::runtime_error("pbt exploit: cannot copy " + from + " to " + to + ": " + ec.message());
        bytes += fs::file_size(to, ec);
    }
    return bytes;
}

void pbt_check(const SearchSpace& space, const std::string& search, int interval, double quantile, int epochs) {
    if (search != "random")
        throw UsageError("--scheduler: pbt starts from a random population: use --search random, not " + search);
    // A member resumes from another's checkpoint: the model's layout and the optimizer must match.
    static const char* layout[] = {"dims", "filters", "depth", "norm", "upsampling", "in_channels", "out_channels",
                                   "optimizer", "amsgrad", "labels", "regions"};
    for (const Hyperparameter& h : space.params)
        if (std::find(std::begin(layout), std::end(layout), h.name) != std::end(layout))
            throw UsageError("--scheduler: pbt copies checkpoints between members, so " + h.name +
                             " (it changes the model or the optimizer's state) belongs in [fixed], not [search]");
    bool continuous = false;
    for (const Hyperparameter& h : space.params) continuous = continuous || h.kind != Hyperparameter::Kind::choice;
    if (!continuous)
        throw UsageError("--scheduler: pbt needs a uniform, loguniform or range hyperparameter in [search] of " +
                         space.file + " to perturb");
    if (interval < 1) throw UsageError("--perturbation_interval: expected at least 1 epoch");
    if (interval >= epochs)
        throw UsageError("--perturbation_interval: " + std::to_string(interval) + " epochs leave no round boundary before --epochs " +
                         std::to_string(epochs));
    if (!(quantile > 0 && quantile <= 0.5)) throw UsageError("--pbt_quantile: expected a fraction in (0, 0.5]");
}

}  // namespace unet
