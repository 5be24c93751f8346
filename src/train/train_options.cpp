#include "unet/train/train_options.h"

#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "unet/train/flags.h"
#include "unet/train/training_state.h"

#include "unet/train/json_config.h"
#include "unet/core/check.h"
#include "unet/core/shared_input_error.h"
#include "unet/core/text.h"

namespace po = boost::program_options;

namespace unet {

Dims parse_size_list(const std::string& flag, const std::string& text) {
    Dims out;
    if (!parse_dims(text, &out))
        throw UsageError("--" + flag + ": expected comma-separated positive integers, got '" + text + "'");
    return out;
}

namespace {


}  // namespace

namespace {
void resolve(TrainOptions& o, const RawOptions& r, const po::variables_map& vm);
void resolve_tuning(TrainOptions& o, const po::variables_map& vm);
}

namespace {

// The key of a settings line whose text starts at `start`: up to '=', without trailing blanks.
std::string settings_key(const std::string& line, size_t start) {
    const size_t eq = line.find('=');
    std::string key = line.substr(start, eq == std::string::npos ? std::string::npos : eq - start);
    key.erase(key.find_last_not_of(" \t") + 1);
    return key;
}

// A settings file's lines that set something, each with its line number and the section above it
// (blank lines, comments and section headers left out).
struct SettingLine {
    int number;
    std::string section, line, key;
};

std::vector<SettingLine> setting_lines(const std::string& text) {
    std::istringstream in(text);
    std::string line, section;
    std::vector<SettingLine> out;
    for (int number = 1; std::getline(in, line); ++number) {
        const size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#' || line[start] == ';') continue;
        if (line[start] == '[') {
            section = line;
            continue;
        }
        out.push_back({number, section, line, settings_key(line, start)});
    }
    return out;
}

// A settings file without any error, stored with one parse of the whole file: the same lines, each
// after its section header, as store_settings_file would store one at a time, and the same values
// in the end. Its per-line parse builds Program_options' set of allowed names again for every line
// (parse_config_file), 70% of a 20-line file's parse and most of the settings fuzz harness's time.
// False, with `vm` untouched, on anything to report (a key given twice, a placeholder, a value or
// key Program_options refuses): the line-by-line store then finds the first error and its line.
bool store_clean_settings(const std::vector<SettingLine>& lines, const po::options_description& flags,
                          po::variables_map& vm) {
    std::string joined;
    std::set<std::string> keys;
    try {
        for (const SettingLine& s : lines) {
            refuse_option_placeholders(s.line, "");
            if (!keys.insert(s.section + s.key).second) return false;
            joined += s.section + "\n" + s.line + "\n";
        }
        po::variables_map trial = vm;  // a failed store leaves part of the file in its map
        std::istringstream all(joined);
        po::store(po::parse_config_file(all, flags), trial);
        vm = std::move(trial);
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

// A settings file stored one line at a time, so that an unknown key or a bad value names the
// file and the line; a key given twice in the file is refused too. A file without errors is
// stored in one parse (store_clean_settings), with the same result.
void store_settings_file(const std::string& file, const std::string& text, const po::options_description& flags,
                         po::variables_map& vm) {
    const std::vector<SettingLine> lines = setting_lines(text);
    if (store_clean_settings(lines, flags, vm)) return;
    std::map<std::string, int> first_line;
    for (const SettingLine& s : lines) {
        const std::string where = "--config: " + file + ":" + std::to_string(s.number) + ": ";
        refuse_option_placeholders(s.line, where);
        const auto seen = first_line.emplace(s.section + s.key, s.number);
        if (!seen.second)
            throw UsageError(where + "'" + s.key + "' is set again (first on line " + std::to_string(seen.first->second) + ")");
        try {
            std::istringstream one(s.section + "\n" + s.line + "\n");
            po::store(po::parse_config_file(one, flags), vm);
        } catch (const po::error& e) {
            throw UsageError(where + e.what());
        }
    }
}

// --resume FILE, or --resume auto with a checkpoint in --logdir: the checkpoint's path, else "".
std::string resume_source(const po::variables_map& vm) {
    if (!vm.count("resume")) return "";
    const std::string r = vm["resume"].as<std::string>();
    if (r != "auto") return r;
    if (!vm.count("logdir")) return "";
    const std::string latest = vm["logdir"].as<std::string>() + "/checkpoint_latest.h5";
    return access(latest.c_str(), F_OK) == 0 ? latest : "";
}

// What a resumed run takes from its checkpoint, as settings lines below the command line: the
// configuration it trained with, its dataset and patch, and (without --logdir) its directory.
std::string resumed_settings(const std::string& file, const po::variables_map& vm, TrainOptions* trained) {
    // A file that is not a checkpoint of ours is what was typed (exit 2); a damaged one is found
    // while reading (exit 1, the error as read_checkpoint words it, naming the file), by every rank
    // under mpirun alike: rank 0 alone says it (SharedInputError).
    Checkpoint c;
    try {
        c = read_checkpoint(file, false);
        *trained = options_of(c, file);
    } catch (const WrongCheckpoint& e) {
        throw UsageError(std::string("--resume: ") + e.what());
    } catch (const UsageError&) {
        throw;
    } catch (const std::runtime_error& e) {
        throw SharedInputError(e.what());
    }
    std::string text = c.strings.at("config") + "\n";
    for (const char* key : {"data", "patch"}) {
        const auto v = c.strings.find(key);
        if (v != c.strings.end()) text += std::string(key) + " = " + v->second + "\n";
    }
    if (!vm.count("logdir")) {
        const size_t slash = file.find_last_of('/');
        text += "logdir = " + (slash == std::string::npos ? std::string(".") : file.substr(0, slash)) + "\n";
    }
    return text;
}

// A resumed run must be the model and optimizer it continues: a command-line flag that changes
// them is refused with both sides named.
void check_resumed_model(const std::string& file, const TrainOptions& trained, const TrainOptions& o) {
    const UNetConfig &a = trained.model, &b = o.model;
    auto describe = [](const TrainOptions& t) {
        const UNetConfig& m = t.model;
        return std::to_string(m.dims) + "D UNet, filters " + std::to_string(m.base_filters) + ", depth " +
               std::to_string(m.depth) + ", labels " + regions_text(t.regions) + ", norm " + norm_name(m.norm) +
               ", " + upsampling_name(m.upsampling) +
               " up-sampling, optimizer " + t.optimizer.kind + (t.optimizer.amsgrad ? " (amsgrad)" : "");
    };
    if (a.dims != b.dims || a.base_filters != b.base_filters || a.depth != b.depth || a.norm != b.norm ||
        regions_text(trained.regions) != regions_text(o.regions) ||
        a.upsampling != b.upsampling || trained.optimizer.kind != o.optimizer.kind ||
        trained.optimizer.amsgrad != o.optimizer.amsgrad)
        throw UsageError("--resume: " + file + " is a " + describe(trained) + "; this run asks a " + describe(o) +
                         " (leave the model flags out to continue it)");
}

int TrainOptions::objective_region() const {
    if (objective == "mean") return -1;
    for (size_t i = 0; i < regions.size(); ++i)
        if (regions_text({regions[i]}) == objective) return int(i);
    throw UsageError("--objective: expected mean or one of the trained regions (" + regions_text(regions) + "), got '" +
                     objective + "'");
}

bool is_train_flag(const std::string& name) {
    TrainOptions o;
    RawOptions r;
    return option_table(o, r).find_nothrow(name, false) != nullptr;
}

bool parse_train_options(int argc, char** argv, TrainOptions& o, const std::string& overrides,
                         const TuneSettings& tune_settings) {
    RawOptions r;
    po::options_description flags = option_table(o, r);
    po::variables_map vm;
    TrainOptions trained;  // a resumed checkpoint's configuration
    std::string resumed;
    for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
    for (int i = 1; i < argc; ++i) refuse_option_placeholders(argv[i], std::string("argument ") + argv[i] + ": ");
    // Program_options keeps the first value stored for a flag: layers go in from the strongest.
    auto store_settings = [&](const std::string& text) {
        refuse_option_placeholders(text, "settings: ");
        std::istringstream in(text);
        po::store(po::parse_config_file(in, flags), vm);
    };
    try {
        if (!overrides.empty()) store_settings(overrides);
        po::store(po::parse_command_line(argc, argv, flags), vm);
        if (vm.count("help")) {
            std::cout << help_caption() << flags << "\n";
            return false;
        }
        // A resume continues the checkpoint's run: its settings, under what the command line says.
        resumed = overrides.empty() ? resume_source(vm) : "";
        if (!resumed.empty()) store_settings(resumed_settings(resumed, vm, &trained));
        if (vm.count("tune") && tune_settings) store_settings(tune_settings(vm["tune"].as<std::string>()));
        if (vm.count("config")) {
            const std::string file = vm["config"].as<std::string>();
            std::ifstream in(file);
            if (!in) throw UsageError("--config: cannot read '" + file + "'");
            std::stringstream text;
            text << in.rdbuf();
            if (is_json_config(file)) store_settings(json_config_to_settings(text.str(), file));
            else store_settings_file(file, text.str(), flags, vm);
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    resolve(o, r, vm);
    if (!resumed.empty()) check_resumed_model(resumed, trained, o);
    return true;
}

TrainOptions parse_settings_text(const std::string& text) {
    TrainOptions o;
    RawOptions r;
    po::options_description flags = option_table(o, r);
    po::variables_map vm;
    refuse_option_placeholders(text, "settings: ");
    try {
        std::istringstream in(text);
        po::store(po::parse_config_file(in, flags), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(std::string("settings: ") + e.what());
    }
    resolve(o, r, vm);
    return o;
}

namespace {

// --val_whole_every: auto (-1), 0 (off) or a number of epochs.
int parse_whole_every(const std::string& text) {
    if (text == "auto") return -1;
    try {
        size_t pos = 0;
        const int k = std::stoi(text, &pos);
        if (pos == text.size() && k >= 0) return k;
    } catch (const std::exception&) {
    }
    throw UsageError("--val_whole_every: expected auto, 0 (patches only) or a number of epochs, got '" + text + "'");
}

// Turns the raw strings into typed options and validates everything (UsageError naming the flag).
void resolve(TrainOptions& o, const RawOptions& r, const po::variables_map& vm) {
    o.model.base_filters = r.filters;
    o.model.depth = r.depth;
    o.model.seed = o.seed;
    o.model.norm = parse_norm(r.norm);
    o.model.upsampling = parse_upsampling(r.upsampling);
    if (r.use_upsampling && vm["upsampling"].defaulted()) o.model.upsampling = Upsampling::nearest;
    if (r.conv_algorithm != "winograd" && r.conv_algorithm != "direct")
        throw UsageError("--conv_algorithm: expected winograd or direct, got '" + r.conv_algorithm + "'");
    o.model.winograd = r.conv_algorithm == "winograd";
    o.loss = parse_loss(r.loss);
    o.regions = parse_regions(r.labels);
    o.model.out_channels = int64_t(o.regions.size());
    o.objective_region();  // throws for an objective that names no trained region
    o.optimizer.kind = r.optimizer;
    o.input_size = parse_size_list("input_size", r.input_size);
    if (vm["input_size"].defaulted() && o.model.dims == 3) o.input_size = {64, 64, 64};
    o.input_size_given = !vm["input_size"].defaulted();
    if (!r.patch.empty()) o.patch = parse_size_list("patch", r.patch);
    if (!o.patch.empty() && o.model.dims != 3)
        throw UsageError("--patch: 3D only (--dims 3); a 2D model trains on whole slices");
    {
        const std::string& c = r.checkpoint_every;
        const bool seconds = !c.empty() && c.back() == 's';
        const std::string number = seconds ? c.substr(0, c.size() - 1) : c;
        try {
            size_t pos = 0;
            const double v = std::stod(number, &pos);
            if (pos != number.size() || v < 0 || (!seconds && v != double(int64_t(v)))) throw std::invalid_argument(c);
            if (seconds) o.checkpoint_every_seconds = v;
            else o.checkpoint_every_steps = int64_t(v);
        } catch (const std::exception&) {
            throw UsageError("--checkpoint_every: expected a number of steps or seconds like 300s, got '" + c + "'");
        }
    }
    o.val_whole_every = parse_whole_every(r.val_whole_every);
    if (!o.tune_file.empty() && o.val_whole_every > 1)
        throw UsageError("--val_whole_every: the tuner compares trials after every epoch; use 1, auto or 0 (patches)");
    // A missing dataset is a typing mistake (exit 2), found before any rank starts work; a damaged
    // one is found by the reader (exit 1).
    if (!o.data.empty() && access(o.data.c_str(), R_OK) != 0)
        throw UsageError("--data: cannot read '" + o.data + "' (" + std::strerror(errno) +
                         "); prepare a dataset with unet_prepare");
    if (o.sync != "ps" && o.sync != "allreduce") throw UsageError("--sync: expected ps or allreduce, got '" + o.sync + "'");
    if (o.resume == "auto" && o.logdir.empty()) throw UsageError("--resume auto: needs --logdir (where to look)");
    if (!(o.fg_fraction >= 0 && o.fg_fraction <= 1)) throw UsageError("--fg_fraction: expected a value in [0, 1]");
    o.model.validate(o.input_size);
    o.optimizer.validate();
    o.schedule.validate();
    if (o.batch_size < 1) throw UsageError("--batch_size: expected at least 1, got " + std::to_string(o.batch_size));
    if (o.epochs < 1) throw UsageError("--epochs: expected at least 1, got " + std::to_string(o.epochs));
    if (o.steps < 0) throw UsageError("--steps: expected 0 or more");
    if (o.benchmark && o.steps < 1) o.steps = 5;
    if (o.num_threads < 0) throw UsageError("--num_threads: expected 0 or more");
    if (o.toy_samples < 1) throw UsageError("--toy_samples: expected at least 1");
    if (o.print_every < 1) throw UsageError("--print_every: expected at least 1");
    if (o.num_ps < 1) throw UsageError("--num_ps: expected at least 1");
    if (o.num_ps > 1 && o.sync != "ps") throw UsageError("--num_ps: only with --sync ps");
    if (!(o.bucket_mb > 0)) throw UsageError("--bucket_mb: expected a positive size in MiB");
    if (o.image_every < 0) throw UsageError("--image_every: expected 0 or more");
    resolve_tuning(o, vm);
}

// DistMIS's keys become our sizes unless the flags they stand for were given; tuning flags checked.
void resolve_tuning(TrainOptions& o, const po::variables_map& vm) {
    if (o.num_replicas < 0) throw UsageError("--num_replicas: expected 0 or more");
    if (o.batch_size_per_replica < 0) throw UsageError("--batch_size_per_replica: expected 0 or more");
    if (o.num_replicas > 0 && vm["group_size"].defaulted()) o.group_size = o.num_replicas + (o.sync == "ps" ? 1 : 0);
    if (o.batch_size_per_replica > 0 && vm["batch_size"].defaulted())
        o.batch_size = int64_t(o.batch_size_per_replica) * std::max(1, o.num_replicas);
    if (o.debug && vm["print_every"].defaulted()) o.print_every = 1;
    if (o.group_size < 1) throw UsageError("--group_size: expected at least 1");
    if (o.trials < 0) throw UsageError("--trials: expected 0 or more");
    if (o.search != "grid" && o.search != "random" && o.search != "tpe")
        throw UsageError("--search: expected grid, random or tpe, got '" + o.search + "'");
    if ((o.search == "random" || o.search == "tpe") && o.trials < 1 && !o.tune_file.empty())
        throw UsageError("--trials: " + o.search + " search needs the number of trials to run");
    if (o.startup_trials < 0) throw UsageError("--startup_trials: expected 0 or more");
    if (o.scheduler != "fifo" && o.scheduler != "asha" && o.scheduler != "median" && o.scheduler != "pbt")
        throw UsageError("--scheduler: expected fifo, asha, median or pbt, got '" + o.scheduler + "'");
    if (o.perturbation_interval < 1) throw UsageError("--perturbation_interval: expected at least 1 epoch");
    if (!(o.pbt_quantile > 0 && o.pbt_quantile <= 0.5)) throw UsageError("--pbt_quantile: expected a fraction in (0, 0.5]");
    if (o.grace_period < 1) throw UsageError("--grace_period: expected at least 1 epoch");
    if (o.reduction_factor < 2) throw UsageError("--reduction_factor: expected at least 2");
    if (o.max_failures < 0) throw UsageError("--max_failures: expected 0 or more");
    if (!o.tune_file.empty() && o.logdir.empty()) throw UsageError("--logdir: required with --tune (it holds every trial and the ledger)");
}

}  // namespace

std::string TrainOptions::describe() const { return settings_text(*this, kConfig); }

}  // namespace unet
