#include "unet/tune/search_space.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "unet/core/check.h"
#include "unet/train/train_options.h"

namespace unet {

namespace {

std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

[[noreturn]] void bad_line(const std::string& file, int line, const std::string& what) {
    throw UsageError("--tune: " + file + ":" + std::to_string(line) + ": " + what);
}

std::vector<std::string> split_arguments(const std::string& inside) {
    std::vector<std::string> out;
    std::stringstream ss(inside);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(trim(item));
    return out;
}

double number(const std::string& text, const std::string& file, int line) {
    try {
        size_t pos = 0;
        const double v = std::stod(text, &pos);
        if (pos == text.size() && std::isfinite(v)) return v;
    } catch (const std::exception&) {
    }
    bad_line(file, line, "expected a number, got '" + text + "'");
}

int64_t integer(const std::string& text, const std::string& file, int line) {
    try {
        size_t pos = 0;
        const long long v = std::stoll(text, &pos);
        if (pos == text.size()) return v;
    } catch (const std::exception&) {
    }
    bad_line(file, line, "expected an integer, got '" + text + "'");
}

// "choice(a, b)", "uniform(lo, hi)", "loguniform(lo, hi)", "range(lo, hi[, step])".
Hyperparameter parse_distribution(const std::string& name, const std::string& value, const std::string& file, int line) {
    Hyperparameter h;
    h.name = name;
    h.line = line;
    const size_t open = value.find('(');
    if (open == std::string::npos || value.back() != ')')
        bad_line(file, line, name + ": expected choice(...), uniform(lo, hi), loguniform(lo, hi) or range(lo, hi[, step]), got '" +
                                 value + "'");
    const std::string kind = trim(value.substr(0, open));
    const std::vector<std::string> args = split_arguments(value.substr(open + 1, value.size() - open - 2));
    for (const std::string& a : args)
        if (a.empty()) bad_line(file, line, name + ": empty argument in '" + value + "'");
    if (kind == "choice") {
        h.kind = Hyperparameter::Kind::choice;
        h.choices = args;
        if (h.choices.empty()) bad_line(file, line, name + ": choice() needs at least one value");
    } else if (kind == "uniform" || kind == "loguniform") {
        h.kind = kind == "uniform" ? Hyperparameter::Kind::uniform : Hyperparameter::Kind::loguniform;
        if (args.size() != 2) bad_line(file, line, name + ": " + kind + "(lo, hi) takes two numbers");
        h.lo = number(args[0], file, line);
        h.hi = number(args[1], file, line);
        if (!(h.lo < h.hi)) bad_line(file, line, name + ": " + kind + "(lo, hi) needs lo < hi");
        if (kind == "loguniform" && h.lo <= 0) bad_line(file, line, name + ": loguniform(lo, hi) needs lo > 0");
    } else if (kind == "range") {
        h.kind = Hyperparameter::Kind::range;
        if (args.size() != 2 && args.size() != 3) bad_line(file, line, name + ": range(lo, hi[, step]) takes two or three integers");
        h.first = integer(args[0], file, line);
        h.last = integer(args[1], file, line);
        if (args.size() == 3) h.step = integer(args[2], file, line);
        if (h.first > h.last || h.step < 1) bad_line(file, line, name + ": range(lo, hi[, step]) needs lo <= hi and step >= 1");
    } else {
        bad_line(file, line, name + ": unknown distribution '" + kind + "' (choice, uniform, loguniform, range)");
    }
    return h;
}

}  // namespace

std::string format_in_bounds(double v, double lo, double hi) {
    v = std::min(hi, std::max(lo, v));
    char text[40];
    std::snprintf(text, sizeof text, "%.6g", v);
    const double back = std::strtod(text, nullptr);
    // Six digits can round past a bound written with more: then every digit.
    if (back < lo || back > hi) std::snprintf(text, sizeof text, "%.17g", v);
    return text;
}

std::vector<std::string> Hyperparameter::grid_values(const std::string& file) const {
    switch (kind) {
        case Kind::choice:
            return choices;
        case Kind::range: {
            std::vector<std::string> out;
            for (int64_t v = first; v <= last; v += step) out.push_back(std::to_string(v));
            return out;
        }
        default:
            bad_line(file, line, name + ": a continuous distribution has no grid; use choice(...) or --search random");
    }
}

SearchSpace parse_search_space(const std::string& text, const std::string& file) {
    SearchSpace s;
    s.file = file;
    std::istringstream in(text);
    std::string raw, section;
    int line = 0;
    while (std::getline(in, raw)) {
        ++line;
        std::string l = trim(raw);
        if (l.empty() || l[0] == '#' || l[0] == ';') continue;
        if (l[0] == '[') {
            if (l.back() != ']') bad_line(file, line, "expected [section], got '" + l + "'");
            section = trim(l.substr(1, l.size() - 2));
            if (section != "search" && section != "fixed" && section != "tune")
                bad_line(file, line, "unknown section [" + section + "] (search, fixed, tune)");
            continue;
        }
        const size_t eq = l.find('=');
        if (eq == std::string::npos) bad_line(file, line, "expected 'name = value', got '" + l + "'");
        const std::string key = trim(l.substr(0, eq)), value = trim(l.substr(eq + 1));
        if (key.empty() || value.empty()) bad_line(file, line, "expected 'name = value', got '" + l + "'");
        if (section.empty()) bad_line(file, line, "'" + key + "' comes before any [search], [fixed] or [tune] section");
        auto seen = [&](const std::string& k) {
            for (const Hyperparameter& h : s.params)
                if (h.name == k) return true;
            for (const auto& f : s.fixed)
                if (f.first == k) return true;
            return false;
        };
        if (section == "tune") {
            static const char* tuning[] = {"search", "trials", "startup_trials", "scheduler", "grace_period",
                                           "reduction_factor", "max_failures", "group_size",
                                           "perturbation_interval", "pbt_quantile"};
            if (std::find(std::begin(tuning), std::end(tuning), key) == std::end(tuning))
                bad_line(file, line, "[tune] takes search, trials, startup_trials, scheduler, grace_period, "
                                     "reduction_factor, max_failures, group_size, perturbation_interval and pbt_quantile, not '" + key + "'");
            if (s.tune.count(key)) bad_line(file, line, key + " is set twice");
            s.tune[key] = value;
        } else if (seen(key)) {
            bad_line(file, line, key + " is set twice (searched and fixed settings share one name space)");
        } else if (section == "search") {
            s.params.push_back(parse_distribution(key, value, file, line));
        } else {
            s.fixed.emplace_back(key, value);
        }
        s.line_of[key] = line;
    }
    if (s.params.empty()) throw UsageError("--tune: " + file + ": no hyperparameters in a [search] section");
    return s;
}

SearchSpace read_search_space(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw UsageError("--tune: cannot read '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_search_space(ss.str(), path);
}

std::string tune_file_settings(const std::string& path) {
    const SearchSpace space = read_search_space(path);
    space.check_names(is_train_flag);
    return space.fixed_text() + space.tune_text();
}

std::string SearchSpace::fixed_text() const {
    std::string out;
    for (const auto& f : fixed) out += f.first + " = " + f.second + "\n";
    return out;
}

std::string SearchSpace::tune_text() const {
    std::string out;
    for (const auto& t : tune) out += t.first + " = " + t.second + "\n";
    return out;
}

void SearchSpace::fail_line(int line, const std::string& what) const { bad_line(file, line, what); }

std::string SearchSpace::search_text() const {
    std::string out;
    char number[64];
    for (const Hyperparameter& h : params) {
        out += h.name + " = ";
        switch (h.kind) {
            case Hyperparameter::Kind::choice:
                out += "choice(";
                for (size_t i = 0; i < h.choices.size(); ++i) out += (i ? ", " : "") + h.choices[i];
                out += ")";
                break;
            case Hyperparameter::Kind::uniform:
            case Hyperparameter::Kind::loguniform:
                std::snprintf(number, sizeof number, "(%.17g, %.17g)", h.lo, h.hi);
                out += (h.kind == Hyperparameter::Kind::uniform ? "uniform" : "loguniform") + std::string(number);
                break;
            case Hyperparameter::Kind::range:
                out += "range(" + std::to_string(h.first) + ", " + std::to_string(h.last) + ", " + std::to_string(h.step) + ")";
                break;
        }
        out += "\n";
    }
    return out;
}

std::vector<TrialParams> grid_trials(const SearchSpace& s, int limit) {
    std::vector<std::vector<std::string>> values;
    for (const Hyperparameter& h : s.params) values.push_back(h.grid_values(s.file));
    std::vector<TrialParams> out;
    std::vector<size_t> index(values.size(), 0);
    for (;;) {
        TrialParams t;
        for (size_t i = 0; i < values.size(); ++i) t.emplace_back(s.params[i].name, values[i][index[i]]);
        out.push_back(std::move(t));
        if (limit > 0 && int(out.size()) >= limit) break;
        // Odometer: the last hyperparameter turns fastest.
        size_t k = values.size();
        while (k > 0 && ++index[k - 1] == values[k - 1].size()) index[--k] = 0;
        if (k == 0) break;
    }
    return out;
}

std::vector<TrialParams> random_trials(const SearchSpace& s, int n, uint64_t seed) {
    std::mt19937_64 gen(seed);  // mt19937_64's sequence is fixed by the standard
    auto unit = [&] { return double(gen() >> 11) * 0x1.0p-53; };  // [0, 1)
    auto below = [&](uint64_t n_values) { return uint64_t(unit() * double(n_values)); };
    std::vector<TrialParams> out;
    for (int k = 0; k < n; ++k) {
        TrialParams t;
        for (const Hyperparameter& h : s.params) {
            std::string v;
            switch (h.kind) {
                case Hyperparameter::Kind::choice:
                    v = h.choices[below(h.choices.size())];
                    break;
                case Hyperparameter::Kind::uniform:
                    v = format_in_bounds(h.lo + (h.hi - h.lo) * unit(), h.lo, h.hi);
                    break;
                case Hyperparameter::Kind::loguniform:
                    v = format_in_bounds(std::exp(std::log(h.lo) + (std::log(h.hi) - std::log(h.lo)) * unit()), h.lo, h.hi);
                    break;
                case Hyperparameter::Kind::range:
                    v = std::to_string(h.first + h.step * int64_t(below(uint64_t((h.last - h.first) / h.step + 1))));
                    break;
            }
            t.emplace_back(h.name, v);
        }
        out.push_back(std::move(t));
    }
    return out;
}

std::string params_text(const TrialParams& p) {
    std::string out;
    for (const auto& kv : p) out += kv.first + " = " + kv.second + "\n";
    return out;
}

TrialParams parse_params_text(const std::string& text) {
    TrialParams out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const size_t eq = line.find(" = ");
        if (eq == std::string::npos) {
            if (trim(line).empty()) continue;
            throw std::runtime_error("malformed hyperparameter line '" + line + "'");
        }
        out.emplace_back(line.substr(0, eq), line.substr(eq + 3));
    }
    return out;
}

std::string params_label(const TrialParams& p) {
    std::string out;
    for (const auto& kv : p) out += (out.empty() ? "" : ", ") + kv.first + "=" + kv.second;
    return out;
}

}  // namespace unet
