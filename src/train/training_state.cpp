#include "unet/train/training_state.h"

#include <cstdio>

#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace unet {

std::string param_layout(const ParamStore& store) {
    std::ostringstream os;
    for (const auto& v : store.views()) os << v.name << " " << v.offset << " " << v.count << "\n";
    for (const auto& v : store.buffer_views()) os << "buffer " << v.name << " " << v.offset << " " << v.count << "\n";
    return os.str();
}

int64_t checkpoint_write_bytes(const ParamStore& store, const Optimizer& opt) {
    const int64_t floats = store.size() * (1 + opt.state_copies()) + store.buffers_size();
    return 3 * 4 * floats;
}

// Doubles as text that reads back to the same bits.
static std::string exact_text(double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", v);
    return text;
}

Checkpoint capture_state(const ParamStore& s, Optimizer& opt, const Progress& p, const TrainOptions& o,
                         const std::string& preprocessing) {
    Checkpoint c;
    c.arrays["params"].assign(s.params(), s.params() + s.size());
    c.arrays["buffers"].assign(s.buffers(), s.buffers() + s.buffers_size());
    for (auto& [name, buf] : opt.state()) c.arrays["optimizer/" + name].assign(buf->begin(), buf->end());
    c.integers["step"] = p.step;
    c.integers["epoch"] = p.epoch;
    c.integers["epoch_step"] = p.epoch_step;
    c.integers["optimizer_step"] = opt.step_count();
    c.integers["seed"] = int64_t(o.seed);
    c.strings["best_val_dice"] = std::to_string(p.best_val_dice);
    c.strings["epoch_loss_sum"] = exact_text(p.epoch_loss_sum);
    c.strings["epoch_dice_sum"] = exact_text(p.epoch_dice_sum);
    for (int r = 0; r < kMaxMetricChannels; ++r)
        c.strings["epoch_region_dice_sum_" + std::to_string(r)] = exact_text(p.epoch_region_dice_sums[size_t(r)]);
    c.strings["train_seconds"] = exact_text(p.train_seconds);
    c.strings["param_layout"] = param_layout(s);
    c.strings["optimizer"] = opt.config().kind + (opt.config().amsgrad ? "+amsgrad" : "");
    c.strings["config"] = o.describe();
    c.strings["command_line"] = o.command_line;
    // What inference needs beyond the model (unet_predict): the data it trained on and its window.
    if (!o.data.empty()) c.strings["data"] = o.data;
    if (!o.patch.empty()) c.strings["patch"] = dims_text(o.patch);
    if (!preprocessing.empty()) c.strings["preprocessing"] = preprocessing;
    return c;
}

static const std::vector<float>& array_of(const Checkpoint& c, const std::string& name, const std::string& source,
                                          size_t expect) {
    auto it = c.arrays.find(name);
    if (it == c.arrays.end()) throw std::runtime_error(source + ": checkpoint has no '" + name + "'");
    if (it->second.size() != expect)
        throw std::runtime_error(source + ": '" + name + "' has " + std::to_string(it->second.size()) +
                                 " values, this model needs " + std::to_string(expect));
    return it->second;
}

TrainOptions options_of(const Checkpoint& c, const std::string& source) {
    auto it = c.strings.find("config");
    if (it == c.strings.end()) throw std::runtime_error(source + ": checkpoint has no configuration");
    try {
        return parse_settings_text(it->second);
    } catch (const std::exception& e) {
        throw std::runtime_error(source + ": unreadable configuration (" + e.what() + ")");
    }
}

Progress restore_state(const Checkpoint& c, const std::string& source, ParamStore& s, Optimizer& opt) {
    auto layout = c.strings.find("param_layout");
    if (layout == c.strings.end() || layout->second != param_layout(s))
        throw WrongCheckpoint(source + ": checkpoint is of another model (parameter layout differs: check --dims, "
                                          "--filters, --depth, --norm, --upsampling, --in_channels)");
    auto kind = c.strings.find("optimizer");
    const std::string want = opt.config().kind + (opt.config().amsgrad ? "+amsgrad" : "");
    if (kind == c.strings.end() || kind->second != want)
        throw WrongCheckpoint(source + ": checkpoint was trained with optimizer '" +
                                 (kind == c.strings.end() ? std::string("?") : kind->second) + "', this run uses '" +
                                 want + "'");
    const auto& params = array_of(c, "params", source, size_t(s.size()));
    std::memcpy(s.params(), params.data(), params.size() * sizeof(float));
    const auto& buffers = array_of(c, "buffers", source, size_t(s.buffers_size()));
    if (!buffers.empty()) std::memcpy(s.buffers(), buffers.data(), buffers.size() * sizeof(float));
    for (auto& [name, buf] : opt.state()) {
        const auto& src = array_of(c, "optimizer/" + name, source, buf->size());
        std::copy(src.begin(), src.end(), buf->begin());
    }
    // Counters from the file, bounded: a damaged one must not start a run of 2^62 steps.
    auto integer = [&](const char* name, int64_t lo, int64_t hi) {
        auto it = c.integers.find(name);
        if (it == c.integers.end()) throw std::runtime_error(source + ": checkpoint has no '" + name + "'");
        if (it->second < lo || it->second > hi)
            throw std::runtime_error(source + ": checkpoint's '" + name + "' is " + std::to_string(it->second) +
                                     ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (damaged?)");
        return it->second;
    };
    constexpr int64_t kMaxCount = int64_t(1) << 53;
    opt.set_step_count(integer("optimizer_step", 0, kMaxCount));
    Progress p;
    p.step = integer("step", 0, kMaxCount);
    p.epoch = int(integer("epoch", 0, std::numeric_limits<int>::max()));
    p.epoch_step = integer("epoch_step", 0, p.step);
    // Absent from checkpoints written before they were recorded (the epoch's means then cover
    // only the steps after the resume): the defaults.
    auto real = [&](const char* name, double absent) {
        auto it = c.strings.find(name);
        if (it == c.strings.end()) return absent;
        try {
            size_t used = 0;
            const double v = std::stod(it->second, &used);
            if (used == it->second.size()) return v;
        } catch (const std::exception&) {
        }
        throw std::runtime_error(source + ": checkpoint's '" + name + "' is not a number: '" + it->second.substr(0, 40) +
                                 "' (damaged?)");
    };
    p.best_val_dice = real("best_val_dice", p.best_val_dice);
    p.epoch_loss_sum = real("epoch_loss_sum", 0);
    p.epoch_dice_sum = real("epoch_dice_sum", 0);
    for (int r = 0; r < kMaxMetricChannels; ++r)
        p.epoch_region_dice_sums[size_t(r)] = real(("epoch_region_dice_sum_" + std::to_string(r)).c_str(), 0);
    p.train_seconds = real("train_seconds", 0);
    return p;
}

}  // namespace unet
