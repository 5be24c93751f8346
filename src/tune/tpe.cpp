#include "unet/tune/tpe.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

namespace unet {

namespace {

constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))
constexpr double kSqrt1_2 = 0.70710678118654752440;

// log(Phi(x)), Phi the standard normal CDF, without underflow far in the lower tail (there an
// asymptotic series; erfc is exact to about x = -37 and 0 below).
double log_ndtr(double x) {
    if (x > -20) return std::log(0.5 * std::erfc(-x * kSqrt1_2));
    const double x2 = x * x;
    // Phi(x) ~ phi(x) / -x * (1 - 1/x^2 + 3/x^4 - 15/x^6), relative error < 1e-9 here.
    const double series = 1 - 1 / x2 + 3 / (x2 * x2) - 15 / (x2 * x2 * x2);
    return -0.5 * x2 - kLogSqrt2Pi - std::log(-x) + std::log(series);
}

// log(Phi(b) - Phi(a)) for a < b: the probability mass of a standard normal in [a, b], computed
// in the tail where it is small so a narrow kernel far from a value does not round to log(0).
double log_gauss_mass(double a, double b) {
    if (a >= 0) return log_gauss_mass(-b, -a);  // mirror into the lower tail
    if (b <= 0) {
        const double la = log_ndtr(a), lb = log_ndtr(b);
        return lb + std::log1p(-std::exp(la - lb));
    }
    // a < 0 < b: the middle, at least Phi(b) - 1/2.
    return std::log1p(-0.5 * std::erfc(-a * kSqrt1_2) - 0.5 * std::erfc(b * kSqrt1_2));
}

double log_sum_exp(const std::vector<double>& v) {
    double m = -std::numeric_limits<double>::infinity();
    for (double x : v) m = std::max(m, x);
    if (!std::isfinite(m)) return m;
    double s = 0;
    for (double x : v) s += std::exp(x - m);
    return m + std::log(s);
}

// Optuna's default_weights: 1 for the newest 25 observations, a linear ramp from 1/n up to 1 for
// the older ones (oldest first).
std::vector<double> default_weights(size_t n) {
    std::vector<double> w(n, 1.0);
    if (n < 25) return w;
    const size_t ramp = n - 25;
    for (size_t i = 0; i < ramp; ++i)
        w[i] = ramp == 1 ? 1.0 / double(n) : 1.0 / double(n) + (1.0 - 1.0 / double(n)) * double(i) / double(ramp - 1);
    return w;
}

uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Our own mapping of mt19937_64's fixed sequence (std::*_distribution differ between libraries).
class Random {
   public:
    explicit Random(uint64_t seed) : gen_(seed) {}
    double unit() { return double(gen_() >> 11) * 0x1.0p-53; }  // [0, 1)
    double normal() {  // Box-Muller, one value per call
        const double u1 = 1.0 - unit(), u2 = unit();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586477 * u2);
    }
    size_t pick(const std::vector<double>& weights) {  // weights sum to 1
        const double u = unit();
        double c = 0;
        for (size_t i = 0; i < weights.size(); ++i)
            if (u < (c += weights[i])) return i;
        return weights.size() - 1;
    }

   private:
    std::mt19937_64 gen_;
};

// A hyperparameter in the estimator's coordinates: choice -> index, loguniform -> log(value),
// uniform -> value, range -> value on the grid first, first + step, ... <= last.
struct Axis {
    const Hyperparameter* h = nullptr;
    bool categorical = false;
    double low = 0, high = 0, step = 0;  // numerical; step 0: continuous

    explicit Axis(const Hyperparameter& hp) : h(&hp) {
        switch (hp.kind) {
            case Hyperparameter::Kind::choice:
                categorical = true;
                break;
            case Hyperparameter::Kind::uniform:
                low = hp.lo, high = hp.hi;
                break;
            case Hyperparameter::Kind::loguniform:
                low = std::log(hp.lo), high = std::log(hp.hi);
                break;
            case Hyperparameter::Kind::range:
                step = double(hp.step);
                low = double(hp.first);
                high = double(hp.first + hp.step * ((hp.last - hp.first) / hp.step));
                break;
        }
    }
    size_t n_choices() const { return h->choices.size(); }

    // A value as written in a trial's params; false when it does not belong to the space (a
    // ledger from an edited file: that trial is left out for this hyperparameter).
    bool parse(const std::string& text, double& x) const {
        if (categorical) {
            const auto it = std::find(h->choices.begin(), h->choices.end(), text);
            if (it == h->choices.end()) return false;
            x = double(it - h->choices.begin());
            return true;
        }
        double v = 0;
        try {
            size_t pos = 0;
            v = std::stod(text, &pos);
            if (pos != text.size() || !std::isfinite(v)) return false;
        } catch (const std::exception&) {
            return false;
        }
        if (h->kind == Hyperparameter::Kind::loguniform) {
            if (!(v > 0)) return false;
            v = std::log(v);
        }
        if (step > 0) v = low + step * std::round((v - low) / step);
        x = std::min(high, std::max(low, v));
        return true;
    }

    // Written as random search writes values, inside the bounds.
    std::string format(double x) const {
        if (categorical) return h->choices[size_t(x)];
        if (step > 0) return std::to_string(int64_t(std::llround(x)));
        return format_in_bounds(h->kind == Hyperparameter::Kind::loguniform ? std::exp(x) : x, h->lo, h->hi);
    }
};

// One hyperparameter's Parzen estimator: a weighted mixture of one kernel per observation and the
// prior kernel (the last).
class Parzen {
   public:
    Parzen(const Axis& axis, const std::vector<double>& obs, const std::vector<double>& obs_weights, double prior_weight)
        : axis_(axis) {
        weights_ = obs_weights;
        weights_.push_back(prior_weight);
        const double total = std::accumulate(weights_.begin(), weights_.end(), 0.0);
        for (double& w : weights_) w /= total;
        if (axis.categorical) {
            build_categorical(obs, prior_weight);
        } else {
            build_numerical(obs);
        }
    }

    double log_pdf(double x) const {
        if (axis_.categorical) return std::log(choice_pmf_[size_t(x)]);
        std::vector<double> terms(mus_.size());
        const double half = axis_.step / 2, lo = axis_.low - half, hi = axis_.high + half;
        for (size_t i = 0; i < mus_.size(); ++i) {
            const double s = sigmas_[i], mu = mus_[i];
            const double log_mass = log_gauss_mass((lo - mu) / s, (hi - mu) / s);
            double lp;
            if (axis_.step > 0) {
                lp = log_gauss_mass((x - half - mu) / s, (x + half - mu) / s) - log_mass;
            } else {
                const double z = (x - mu) / s;
                lp = -0.5 * z * z - kLogSqrt2Pi - std::log(s) - log_mass;
            }
            terms[i] = std::log(weights_[i]) + lp;
        }
        return log_sum_exp(terms);
    }

    double sample(Random& rng) const {
        if (axis_.categorical) return double(rng.pick(choice_pmf_));
        const size_t k = rng.pick(weights_);
        const double half = axis_.step / 2, lo = axis_.low - half, hi = axis_.high + half;
        // Rejection: the kernel's centre lies in [lo, hi] and its width is at most hi - lo, so at
        // least a third of its mass is inside.
        double x = mus_[k];
        for (int tries = 0; tries < 1000; ++tries) {
            const double y = mus_[k] + sigmas_[k] * rng.normal();
            if (y >= lo && y <= hi) {
                x = y;
                break;
            }
        }
        if (axis_.step > 0) x = axis_.low + axis_.step * std::round((x - axis_.low) / axis_.step);
        return std::min(axis_.high, std::max(axis_.low, x));
    }

   private:
    void build_categorical(const std::vector<double>& obs, double prior_weight) {
        const size_t n_choices = axis_.n_choices(), kernels = obs.size() + 1;
        choice_pmf_.assign(n_choices, 0.0);
        for (size_t i = 0; i < kernels; ++i) {
            // Kernel i: prior_weight / kernels on every value, plus 1 on its observation (none
            // for the prior kernel), normalised.
            std::vector<double> row(n_choices, prior_weight / double(kernels));
            if (i < obs.size()) row[size_t(obs[i])] += 1.0;
            const double sum = std::accumulate(row.begin(), row.end(), 0.0);
            for (size_t c = 0; c < n_choices; ++c) choice_pmf_[c] += weights_[i] * row[c] / sum;
        }
    }

    void build_numerical(const std::vector<double>& obs) {
        const double low = axis_.low, high = axis_.high, step = axis_.step;
        const double width = high - low + step, prior_mu = 0.5 * (low + high);
        const size_t n = obs.size();
        mus_ = obs;
        sigmas_.assign(n, width);
        if (n > 0) {
            // Each kernel as wide as the larger gap to its neighbours among the observations,
            // the prior's centre and the (half-cell-widened) bounds; the outermost ones use
            // their inner gap only (Optuna's consider_endpoints = false).
            std::vector<double> with_prior = obs;
            with_prior.push_back(prior_mu);
            const size_t m = with_prior.size();
            std::vector<size_t> order(m);
            std::iota(order.begin(), order.end(), size_t(0));
            std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return with_prior[a] < with_prior[b]; });
            std::vector<double> e(m + 2);
            e[0] = low - step / 2;
            for (size_t j = 0; j < m; ++j) e[j + 1] = with_prior[order[j]];
            e[m + 1] = high + step / 2;
            std::vector<double> sorted_sigma(m);
            for (size_t j = 0; j < m; ++j) sorted_sigma[j] = std::max(e[j + 1] - e[j], e[j + 2] - e[j + 1]);
            if (m >= 2) {
                sorted_sigma[0] = e[2] - e[1];
                sorted_sigma[m - 1] = e[m] - e[m - 1];
            }
            // Optuna's magic clip: no kernel narrower than width / min(100, kernels + 1).
            const double min_sigma = width / std::min(100.0, 1.0 + double(n + 1)), max_sigma = width;
            for (size_t j = 0; j < m; ++j)
                if (order[j] < n) sigmas_[order[j]] = std::min(max_sigma, std::max(min_sigma, sorted_sigma[j]));
        }
        mus_.push_back(prior_mu);
        sigmas_.push_back(width);
    }

    const Axis& axis_;
    std::vector<double> weights_;     // mixture weights, the prior's last; sum 1
    std::vector<double> mus_, sigmas_;  // numerical kernels
    std::vector<double> choice_pmf_;  // categorical: the mixture's probability of each value
};

// One group's (good or bad) observations of one hyperparameter, oldest trial first, with
// Optuna's default weights.
Parzen estimator_of(const Axis& axis, const std::vector<const TpeTrial*>& trials, double prior_weight) {
    std::vector<double> obs;
    for (const TpeTrial* t : trials)
        for (const auto& kv : t->params) {
            double x = 0;
            if (kv.first == axis.h->name && axis.parse(kv.second, x)) obs.push_back(x);
        }
    return Parzen(axis, obs, default_weights(obs.size()), prior_weight);
}

}  // namespace

// ceil(0.1 n) in integers (Optuna's floating point gives 4 for n = 30).
int tpe_good_count(int n) { return std::min((std::max(n, 0) + 9) / 10, 25); }

std::vector<TpeTrial> tpe_history(const Ledger& ledger) {
    std::vector<TpeTrial> out;
    for (const TrialRecord& r : ledger.trials) {
        if (r.params.empty() || r.status == "failed") continue;
        TpeTrial t;
        t.id = r.id;
        t.params = r.params;
        // A stopped trial counts with the best Dice it reached; one stopped before any report
        // (cannot happen today) would have nothing to count and stays out.
        t.finished = r.status == "completed" || r.status == "stopped";
        if (t.finished && r.dice.empty()) continue;
        t.value = t.finished ? r.best_dice() : 0.0;
        out.push_back(std::move(t));
    }
    return out;
}

TrialParams tpe_suggest(const SearchSpace& space, const TpeConfig& config, const std::vector<TpeTrial>& history, int id) {
    if (id < 0) throw std::logic_error("tpe_suggest: negative trial id");
    if (id < config.startup_trials) return random_trials(space, id + 1, config.seed)[size_t(id)];
    // The split: the best gamma(n) finished trials are good; the other finished ones and every
    // unfinished one (the constant liar: worse than every finished trial) are bad.
    std::vector<const TpeTrial*> finished, good, bad;
    for (const TpeTrial& t : history) {
        if (t.id == id) throw std::logic_error("tpe_suggest: trial " + std::to_string(id) + " is in its own history");
        (t.finished ? finished : bad).push_back(&t);
    }
    std::stable_sort(finished.begin(), finished.end(), [](const TpeTrial* a, const TpeTrial* b) {
        return a->value > b->value || (a->value == b->value && a->id < b->id);
    });
    const size_t n_good = std::min(finished.size(), size_t(tpe_good_count(int(history.size()))));
    good.assign(finished.begin(), finished.begin() + long(n_good));
    bad.insert(bad.end(), finished.begin() + long(n_good), finished.end());
    auto by_id = [](const TpeTrial* a, const TpeTrial* b) { return a->id < b->id; };
    std::sort(good.begin(), good.end(), by_id);
    std::sort(bad.begin(), bad.end(), by_id);

    // Trial id's own stream: the same whatever was drawn before or by whom.
    Random rng(splitmix64(config.seed ^ splitmix64(uint64_t(id) + 0x5450455f5452ull)));
    TrialParams out;
    for (const Hyperparameter& h : space.params) {
        const Axis axis(h);
        const Parzen l = estimator_of(axis, good, config.prior_weight), g = estimator_of(axis, bad, config.prior_weight);
        double best_x = 0, best_score = -std::numeric_limits<double>::infinity();
        for (int c = 0; c < std::max(1, config.candidates); ++c) {
            const double x = l.sample(rng);
            const double score = l.log_pdf(x) - g.log_pdf(x);
            if (c == 0 || score > best_score) best_x = x, best_score = score;
        }
        out.emplace_back(h.name, axis.format(best_x));
    }
    return out;
}

double tpe_log_density(const Hyperparameter& h, const std::vector<std::string>& values, const std::string& x,
                       double prior_weight) {
    const Axis axis(h);
    std::vector<double> obs;
    for (const std::string& v : values) {
        double o = 0;
        if (axis.parse(v, o)) obs.push_back(o);
    }
    const Parzen p(axis, obs, default_weights(obs.size()), prior_weight);
    double at = 0;
    if (!axis.parse(x, at)) throw std::invalid_argument("tpe_log_density: '" + x + "' is not a value of " + h.name);
    return p.log_pdf(at);
}

}  // namespace unet
