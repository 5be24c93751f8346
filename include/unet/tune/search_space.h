// The search-space file of `unet_train --tune FILE`: an INI file with three sections.
//
//   [search]          one hyperparameter per line, named like unet_train's flags:
//   learningrate = loguniform(1e-4, 1e-2)
//   norm = choice(batch, group)
//   filters = range(8, 32, 8)        integers lo..hi inclusive, optional step
//   dropout = uniform(0, 0.3)
//   [fixed]           settings every trial gets (like a --config file: the command line wins)
//   epochs = 6
//   [tune]            defaults for the tuning flags (search, trials, startup_trials, scheduler,
//   scheduler = asha  grace_period, reduction_factor, max_failures); the command line wins here too
//
// Errors name the file and line ("tune.ini:4: ..."), one line each.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace unet {

struct Hyperparameter {
    enum class Kind { choice, uniform, loguniform, range };
    std::string name;
    Kind kind = Kind::choice;
    std::vector<std::string> choices;  // choice: the values as written
    double lo = 0, hi = 0;             // uniform / loguniform
    int64_t first = 0, last = 0, step = 1;  // range
    int line = 0;
    // Every value a grid visits; throws UsageError for uniform / loguniform (not enumerable).
    std::vector<std::string> grid_values(const std::string& file) const;
};

// One trial's hyperparameters in the file's order: (flag name, value as text).
using TrialParams = std::vector<std::pair<std::string, std::string>>;

struct SearchSpace {
    std::string file;
    std::vector<Hyperparameter> params;
    std::vector<std::pair<std::string, std::string>> fixed;  // [fixed] key = value
    std::map<std::string, std::string> tune;                 // [tune] key = value
    std::map<std::string, int> line_of;                      // every key's line, for messages
    // "key = value" lines of the [fixed] section, for the option parser.
    std::string fixed_text() const;
    std::string tune_text() const;
    // The [search] section in a canonical form ("name = kind(args)" lines), for fingerprints.
    std::string search_text() const;
    // UsageError "FILE:LINE: ..." for the first key for which known(key) is false.
    template <class Known>
    void check_names(Known known) const {
        for (const auto& kv : line_of)
            if (!known(kv.first)) fail_line(kv.second, "'" + kv.first + "' is not a unet_train flag");
    }
    [[noreturn]] void fail_line(int line, const std::string& what) const;
};

SearchSpace parse_search_space(const std::string& text, const std::string& file);
SearchSpace read_search_space(const std::string& path);

// Every combination, the first hyperparameter varying slowest (nested loops in file order);
// at most `limit` of them when limit > 0.
std::vector<TrialParams> grid_trials(const SearchSpace& s, int limit = 0);
// `n` independent samples from a generator seeded with `seed`: the same seed gives the same
// trials on every machine (our own uniform mapping, not std::*_distribution).
std::vector<TrialParams> random_trials(const SearchSpace& s, int n, uint64_t seed);

// The [fixed] and [tune] settings of the search-space file at `path`, every key checked against
// unet_train's flags (parse_train_options' TuneSettings). Throws UsageError "FILE:LINE: ...".
std::string tune_file_settings(const std::string& path);

// A uniform or loguniform value as trials carry it: six significant digits (every digit where six
// would round past lo or hi), always inside [lo, hi].
std::string format_in_bounds(double v, double lo, double hi);

std::string params_text(const TrialParams& p);  // "key = value" lines
TrialParams parse_params_text(const std::string& text);  // params_text's inverse; throws runtime_error
std::string params_label(const TrialParams& p);  // "key=value, key=value"

}  // namespace unet
