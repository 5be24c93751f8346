// --search tpe without training: a scripted Dice as a function of the hyperparameters, driven
// through the Coordinator as the tuner drives it (groups ask, trials report epochs, finish). TPE
// against random search on the same objective and seeds, determinism and resume, every kind of
// hyperparameter inside its bounds, the constant liar for parallel asks, the estimator's
// densities, and the flags and the plan of a tpe search.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <unistd.h>

#include "unet/core/check.h"
#include "unet/train/train_options.h"
#include "unet/tune/coordinator.h"
#include "unet/tune/ledger.h"
#include "unet/tune/search_space.h"
#include "unet/tune/tpe.h"
#include "unet/tune/tuner.h"

using namespace unet;

namespace {

using Objective = std::function<double(const TrialParams&)>;

// The simulations save the ledger (fsync'ed) after every event: in memory where there is such a
// filesystem, or a search of 40 trials waits seconds on the disk.
std::string temp_dir(const std::string& name) {
    std::error_code ec;
    const bool shm = std::filesystem::is_directory("/dev/shm", ec) && access("/dev/shm", W_OK) == 0;
    const std::string d = (shm ? std::string("/dev/shm/") : ::testing::TempDir()) + "unet_test_tpe_" +
                          std::to_string(getpid()) + "_" + name;
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    struct Cleanup {  // removed when the test program ends
        std::set<std::string> dirs;
        ~Cleanup() {
            std::error_code e;
            for (const std::string& x : dirs) std::filesystem::remove_all(x, e);
        }
    };
    static Cleanup cleanup;
    cleanup.dirs.insert(d);
    return d;
}

const std::string& value_of(const TrialParams& p, const std::string& name) {
    for (const auto& kv : p)
        if (kv.first == name) return kv.second;
    throw std::runtime_error("no " + name);
}

// Four kinds, one optimum: learningrate 1e-3, dropout 0.1, filters 40, norm batch (Dice 0.9).
const char* kSpace =
    "[search]\n"
    "learningrate = loguniform(1e-5, 1e-1)\n"
    "dropout = uniform(0, 0.5)\n"
    "filters = range(8, 64, 8)\n"
    "norm = choice(none, batch, group)\n";

double dice_of(const TrialParams& p) {
    const double lr = std::log10(std::stod(value_of(p, "learningrate"))) + 3;
    const double drop = std::stod(value_of(p, "dropout")) - 0.1;
    const double filters = std::stod(value_of(p, "filters")) - 40;
    return 0.9 - 0.06 * lr * lr - 0.8 * drop * drop - 5e-5 * filters * filters -
           (value_of(p, "norm") == "batch" ? 0.0 : 0.05);
}

struct Simulation {
    std::string search = "tpe";
    uint64_t seed = 1;
    int trials = 40;
    int groups = 2;
    int startup = 10;
    int epochs = 3;
    SchedulerConfig scheduler;
};

// A fresh ledger as plan_search + open_ledger make it: random search's trials, or tpe's random
// start-up trials and room for the drawn ones.
Ledger fresh_ledger(const SearchSpace& space, const Simulation& s, const std::string& dir) {
    Ledger l;
    l.dir = dir;
    l.fingerprint = "test";
    std::vector<TrialParams> params = s.search == "random" ? random_trials(space, s.trials, s.seed)
                                                           : random_trials(space, std::min(s.startup, s.trials), s.seed);
    params.resize(size_t(s.trials));
    for (int k = 0; k < s.trials; ++k) {
        TrialRecord t;
        t.id = k;
        t.params = params[size_t(k)];
        l.trials.push_back(t);
    }
    return l;
}

Coordinator make_coordinator(const SearchSpace& space, const Simulation& s, Ledger ledger) {
    // One retry: a trial running when the job "dies" runs again on resume.
    Coordinator c(std::move(ledger), s.scheduler, std::vector<int>(size_t(s.trials), s.epochs), 1);
    c.set_quiet(true);
    if (s.search == "tpe") {
        TpeConfig cfg;
        cfg.seed = s.seed;
        cfg.startup_trials = s.startup;
        const int epochs = s.epochs;
        c.set_drawer([&space, cfg](const Ledger& l, int id) { return tpe_suggest(space, cfg, tpe_history(l), id); },
                     [epochs](const TrialParams&) { return epochs; });
    }
    return c;
}

// Runs one trial as a group would: its Dice rises to f(params) over the epochs; the scheduler
// may stop it.
void train_trial(Coordinator& c, int trial, const Objective& f, int epochs) {
    const double d = f(c.ledger().trials[size_t(trial)].params);
    for (int e = 0; e < epochs; ++e)
        if (!c.report_epoch(trial, e, d * (0.7 + 0.3 * (e + 1) / epochs))) {
            c.finish_trial(trial, {"stopped", ""});
            return;
        }
    c.finish_trial(trial, {"completed", ""});
}

// Every group asks; then, over and over, the trial handed out first finishes and its group asks
// again (so while one trial is drawn, the other groups' trials are pending: the constant liar).
// Stops after `stop_after` trials were handed out (the job "dies" there), or when all are done.
Ledger simulate(const SearchSpace& space, const Simulation& s, const Objective& f, const std::string& dir,
                Ledger* start = nullptr, int stop_after = -1) {
    Coordinator c = make_coordinator(space, s, start ? *start : fresh_ledger(space, s, dir));
    std::deque<std::pair<int, int>> running;  // (trial, group)
    int handed = 0;
    auto ask = [&](int g) {
        if (stop_after >= 0 && handed >= stop_after) return;
        const int t = c.next_trial(g);
        if (t >= 0) running.emplace_back(t, g), ++handed;
    };
    for (int g = 0; g < s.groups; ++g) ask(g);
    while (!running.empty()) {
        const auto [t, g] = running.front();
        running.pop_front();
        train_trial(c, t, f, s.epochs);
        ask(g);
    }
    return c.ledger();
}

double best_of(const Ledger& l) {
    double best = 0;
    for (const TrialRecord& t : l.trials) best = std::max(best, t.best_dice());
    return best;
}

std::vector<TrialParams> params_of(const Ledger& l) {
    std::vector<TrialParams> out;
    for (const TrialRecord& t : l.trials) out.push_back(t.params);
    return out;
}

}  // namespace

TEST(Tpe, GammaIsOptunasDefault) {
    EXPECT_EQ(tpe_good_count(0), 0);
    EXPECT_EQ(tpe_good_count(1), 1);
    EXPECT_EQ(tpe_good_count(10), 1);
    EXPECT_EQ(tpe_good_count(11), 2);
    EXPECT_EQ(tpe_good_count(30), 3);
    EXPECT_EQ(tpe_good_count(245), 25);
    EXPECT_EQ(tpe_good_count(1000), 25);
}

// The estimator's densities are densities: a range's probabilities over its grid and a choice's
// over its values sum to 1, a uniform's (and a loguniform's in log space) integrate to 1, with
// observations near a bound (the truncation) and kernels far narrower than the range.
TEST(Tpe, ParzenDensitiesAreNormalised) {
    const SearchSpace s = parse_search_space(
        "[search]\nf = range(3, 20, 4)\nn = choice(a, b, c)\nx = uniform(-1, 2)\nlr = loguniform(1e-4, 1e-1)\n", "s");
    const std::vector<std::vector<std::string>> obs_f = {{}, {"3"}, {"19", "19", "15"}, {"3", "7", "11", "15", "19", "7"}};
    for (const auto& obs : obs_f) {
        double sum = 0;
        for (int v = 3; v <= 19; v += 4) sum += std::exp(tpe_log_density(s.params[0], obs, std::to_string(v)));
        EXPECT_NEAR(sum, 1.0, 1e-9) << obs.size();
    }
    double sum = 0;
    for (const char* v : {"a", "b", "c"}) sum += std::exp(tpe_log_density(s.params[1], {"a", "a", "c"}, v));
    EXPECT_NEAR(sum, 1.0, 1e-12);
    EXPECT_GT(tpe_log_density(s.params[1], {"a", "a", "c"}, "a"), tpe_log_density(s.params[1], {"a", "a", "c"}, "b"));
    // Trapezoid rule on a fine grid.
    auto integral = [](const Hyperparameter& h, const std::vector<std::string>& obs, double lo, double hi, bool log) {
        const int n = 20000;
        double total = 0;
        for (int i = 0; i <= n; ++i) {
            const double u = lo + (hi - lo) * i / n;
            char text[40];
            std::snprintf(text, sizeof text, "%.17g", log ? std::exp(u) : u);
            const double p = std::exp(tpe_log_density(h, obs, text));
            total += (i == 0 || i == n ? 0.5 : 1.0) * p * (hi - lo) / n;
        }
        return total;
    };
    std::vector<std::string> many;
    for (int i = 0; i < 40; ++i) many.push_back(std::to_string(1.9 + 0.001 * i));  // narrow kernels at a bound
    EXPECT_NEAR(integral(s.params[2], {}, -1, 2, false), 1.0, 1e-6);
    EXPECT_NEAR(integral(s.params[2], {"-1", "0.5", "1.99"}, -1, 2, false), 1.0, 1e-6);
    EXPECT_NEAR(integral(s.params[2], many, -1, 2, false), 1.0, 1e-4);
    EXPECT_NEAR(integral(s.params[3], {"0.001", "0.0015"}, std::log(1e-4), std::log(1e-1), true), 1.0, 1e-6);
    // Far from every kernel the density is tiny but finite (no log(0)).
    const double far = tpe_log_density(s.params[0], std::vector<std::string>(30, "19"), "3");
    EXPECT_TRUE(std::isfinite(far));
}

// What TPE learns from: completed and stopped trials with their best Dice, unfinished ones as
// liars, failed and not-yet-drawn ones not at all.
TEST(Tpe, HistoryCountsStoppedTrialsAndSkipsFailedOnes) {
    Ledger l;
    const char* status[] = {"completed", "stopped", "failed", "running", "pending", "pending"};
    for (int k = 0; k < 6; ++k) {
        TrialRecord t;
        t.id = k;
        t.status = status[k];
        if (k < 5) t.params = {{"x", std::to_string(k)}};
        if (k < 3) t.dice = {0.1 * k, 0.3 * k, 0.2 * k};
        l.trials.push_back(t);
    }
    const std::vector<TpeTrial> h = tpe_history(l);
    ASSERT_EQ(h.size(), 4u);
    EXPECT_EQ(h[0].id, 0);
    EXPECT_TRUE(h[0].finished);
    EXPECT_EQ(h[1].id, 1);
    EXPECT_TRUE(h[1].finished);
    EXPECT_DOUBLE_EQ(h[1].value, 0.3);  // the best Dice it reached before ASHA stopped it
    EXPECT_EQ(h[2].id, 3);
    EXPECT_FALSE(h[2].finished);
    EXPECT_EQ(h[3].id, 4);  // pending with hyperparameters: a retry, or handed out next
    EXPECT_FALSE(h[3].finished);
}

// The main claim: on a scripted objective over all four kinds, 40 trials on 2 groups, TPE finds a
// better best Dice than random search on average over 10 seeds, and its trials after the
// start-up ones crowd around the optimum where random ones spread over the whole space.
TEST(Tpe, ConcentratesNearTheOptimumAndBeatsRandom) {
    const SearchSpace space = parse_search_space(kSpace, "space.ini");
    const std::string dir = temp_dir("vs_random");
    const int seeds = 10;
    double regret[2] = {0, 0}, lr_distance[2] = {0, 0}, drop_distance[2] = {0, 0}, batch[2] = {0, 0};
    int late = 0;
    for (int seed = 1; seed <= seeds; ++seed) {
        for (int k = 0; k < 2; ++k) {
            Simulation s;
            s.search = k == 0 ? "random" : "tpe";
            s.seed = uint64_t(seed);
            const Ledger l = simulate(space, s, dice_of, dir);
            regret[k] += 0.9 - best_of(l);
            for (int t = 20; t < s.trials; ++t) {
                const TrialParams& p = l.trials[size_t(t)].params;
                lr_distance[k] += std::fabs(std::log10(std::stod(value_of(p, "learningrate"))) + 3);
                drop_distance[k] += std::fabs(std::stod(value_of(p, "dropout")) - 0.1);
                batch[k] += value_of(p, "norm") == "batch";
                late += k;
            }
        }
    }
    for (int k = 0; k < 2; ++k) {
        regret[k] /= seeds;
        lr_distance[k] /= late, drop_distance[k] /= late, batch[k] /= late;
    }
    const std::string report = "regret random " + std::to_string(regret[0]) + " tpe " + std::to_string(regret[1]) +
                               "; |log10 lr + 3| " + std::to_string(lr_distance[0]) + " vs " +
                               std::to_string(lr_distance[1]) + "; |dropout - 0.1| " + std::to_string(drop_distance[0]) +
                               " vs " + std::to_string(drop_distance[1]) + "; norm=batch " + std::to_string(batch[0]) +
                               " vs " + std::to_string(batch[1]);
    std::printf("%s\n", report.c_str());
    EXPECT_LT(regret[1], 0.6 * regret[0]) << report;
    EXPECT_LT(lr_distance[1], 0.7 * lr_distance[0]) << report;
    EXPECT_LT(drop_distance[1], 0.7 * drop_distance[0]) << report;
    EXPECT_GT(batch[1], batch[0] + 0.15) << report;
}

// ASHA stops trials in the middle of a TPE search; the search still concentrates, and stopped
// trials are what it learns from too.
TEST(Tpe, WorksWithAshaStoppedTrials) {
    const SearchSpace space = parse_search_space(kSpace, "space.ini");
    const std::string dir = temp_dir("asha");
    double regret[2] = {0, 0};
    int stopped = 0;
    for (int seed = 1; seed <= 6; ++seed)
        for (int k = 0; k < 2; ++k) {
            Simulation s;
            s.search = k == 0 ? "random" : "tpe";
            s.seed = uint64_t(seed);
            s.epochs = 9;
            s.scheduler.kind = "asha";
            const Ledger l = simulate(space, s, dice_of, dir);
            regret[k] += 0.9 - best_of(l);
            for (const TrialRecord& t : l.trials) stopped += k == 1 && t.status == "stopped";
        }
    EXPECT_GT(stopped, 20);
    EXPECT_LT(regret[1], regret[0]);
}

// The same seed and the same results in the same order give the same trials; another seed other
// trials; a search that dies (here mid-trial) and resumes from its ledger on disk draws exactly
// the trials the uninterrupted one drew.
TEST(Tpe, DeterministicAndResumable) {
    const SearchSpace space = parse_search_space(kSpace, "space.ini");
    Simulation s;
    s.seed = 7;
    s.groups = 3;
    const Ledger a = simulate(space, s, dice_of, temp_dir("det_a"));
    const Ledger b = simulate(space, s, dice_of, temp_dir("det_b"));
    EXPECT_EQ(params_of(a), params_of(b));
    s.seed = 8;
    const std::vector<TrialParams> other = params_of(simulate(space, s, dice_of, temp_dir("det_c")));
    EXPECT_NE(params_of(a), other);
    // The first 10 are random search's trials of the seed.
    EXPECT_EQ(std::vector<TrialParams>(other.begin(), other.begin() + 10), random_trials(space, 10, 8));

    // One group, so the order of results does not depend on when the job died.
    s.seed = 7;
    s.groups = 1;
    const Ledger whole = simulate(space, s, dice_of, temp_dir("whole"));
    const std::string dir = temp_dir("resumed");
    {
        // Trials 0..22 handed out, 0..21 finished; the job dies while trial 22 has reported an epoch.
        Coordinator c = make_coordinator(space, s, fresh_ledger(space, s, dir));
        for (int k = 0; k < 22; ++k) {
            ASSERT_EQ(c.next_trial(0), k);
            train_trial(c, k, dice_of, s.epochs);
        }
        ASSERT_EQ(c.next_trial(0), 22);
        c.report_epoch(22, 0, 0.5);
    }
    Ledger on_disk = Ledger::load(dir);
    EXPECT_EQ(on_disk.trials[22].status, "running");
    EXPECT_FALSE(on_disk.trials[22].params.empty());
    EXPECT_TRUE(on_disk.trials[23].params.empty());  // not drawn yet: drawn on resume
    const Ledger resumed = simulate(space, s, dice_of, dir, &on_disk);
    EXPECT_EQ(params_of(resumed), params_of(whole));
    for (const TrialRecord& t : resumed.trials) EXPECT_EQ(t.status, "completed") << t.id;
}

// Every kind stays inside its bounds, also when the optimum sits on a bound (the estimator piles
// up there), bounds have more than the six digits values are written with, and a range's upper
// end is off its grid.
TEST(Tpe, EveryKindStaysInBounds) {
    const SearchSpace space = parse_search_space(
        "[search]\n"
        "a = loguniform(1.23456789e-4, 2.3456789e-2)\n"
        "b = uniform(0.123456789, 0.987654321)\n"
        "c = range(3, 20, 4)\n"
        "d = choice(x, y, z, w)\n"
        "e = range(5, 5)\n"
        "f = choice(only)\n"
        "g = uniform(0.1234567891, 0.1234567899)\n",  // six digits would round every value past hi
        "s");
    // Best at a's and b's upper bounds, c's lowest value, d = w.
    auto f = [](const TrialParams& p) {
        return std::log(std::stod(value_of(p, "a"))) + std::stod(value_of(p, "b")) - 0.05 * std::stod(value_of(p, "c")) +
               (value_of(p, "d") == "w" ? 1.0 : 0.0);
    };
    auto dice = [&](const TrialParams& p) { return 1.0 / (1.0 + std::exp(-f(p))); };
    for (uint64_t seed : {1u, 2u, 3u}) {
        Simulation s;
        s.seed = seed;
        s.trials = 60;
        s.startup = 5;
        const Ledger l = simulate(space, s, dice, temp_dir("bounds"));
        int at_top = 0;
        for (const TrialRecord& t : l.trials) {
            ASSERT_EQ(t.params.size(), 7u);
            const double a = std::stod(value_of(t.params, "a")), b = std::stod(value_of(t.params, "b"));
            EXPECT_GE(a, 1.23456789e-4) << params_label(t.params);
            EXPECT_LE(a, 2.3456789e-2) << params_label(t.params);
            EXPECT_GE(b, 0.123456789) << params_label(t.params);
            EXPECT_LE(b, 0.987654321) << params_label(t.params);
            const int c = std::stoi(value_of(t.params, "c"));
            EXPECT_TRUE(c >= 3 && c <= 19 && (c - 3) % 4 == 0) << params_label(t.params);
            EXPECT_TRUE(std::set<std::string>({"x", "y", "z", "w"}).count(value_of(t.params, "d")));
            EXPECT_EQ(value_of(t.params, "e"), "5");
            EXPECT_EQ(value_of(t.params, "f"), "only");
            const double g = std::stod(value_of(t.params, "g"));
            EXPECT_GE(g, 0.1234567891) << params_label(t.params);
            EXPECT_LE(g, 0.1234567899) << params_label(t.params);
            at_top += t.id >= 30 && a > 1e-2;
        }
        EXPECT_GT(at_top, 10) << "seed " << seed;  // it does push towards the bound
    }
}

// Several groups ask at once: the trials handed out but not finished count as the worst finished
// one, so the parallel asks spread out. Compared with the same asks drawn while ignoring the
// pending trials (no liar), the liar's asks are farther from the best point found so far and from
// each other.
TEST(Tpe, ConstantLiarSpreadsParallelAsks) {
    const SearchSpace space =
        parse_search_space("[search]\nx = uniform(0, 1)\nn = choice(a, b, c, d)\n", "s");
    auto dice = [](const TrialParams& p) {
        const double x = std::stod(value_of(p, "x")) - 0.3;
        return 0.9 - x * x - (value_of(p, "n") == "a" ? 0.0 : 0.2);
    };
    const int groups = 8, seeds = 10;
    double liar_spread = 0, plain_spread = 0;
    int liar_distinct = 0, plain_distinct = 0;
    for (int seed = 1; seed <= seeds; ++seed) {
        Simulation s;
        s.seed = uint64_t(seed);
        s.trials = 10 + groups;
        const std::string dir = temp_dir("liar");
        Coordinator c = make_coordinator(space, s, fresh_ledger(space, s, dir));
        for (int k = 0; k < 10; ++k) {
            ASSERT_EQ(c.next_trial(0), k);
            train_trial(c, k, dice, s.epochs);
        }
        TpeConfig cfg;
        cfg.seed = s.seed;
        const std::vector<TpeTrial> finished = tpe_history(c.ledger());
        std::vector<double> liar_x, plain_x;
        std::set<std::string> liar_n, plain_n;
        for (int g = 0; g < groups; ++g) {  // every group asks before any result comes back
            const int t = c.next_trial(g);
            ASSERT_EQ(t, 10 + g);
            const TrialParams with_liar = c.ledger().trials[size_t(t)].params;
            const TrialParams without = tpe_suggest(space, cfg, finished, t);
            if (g == 0) {
                EXPECT_EQ(with_liar, without);  // nothing pending yet: the same draw
            }
            liar_x.push_back(std::stod(value_of(with_liar, "x")));
            plain_x.push_back(std::stod(value_of(without, "x")));
            liar_n.insert(value_of(with_liar, "n"));
            plain_n.insert(value_of(without, "n"));
        }
        auto spread = [](const std::vector<double>& v) {
            double sum = 0;
            for (double a : v)
                for (double b : v) sum += std::fabs(a - b);
            return sum / double(v.size() * v.size());
        };
        liar_spread += spread(liar_x);
        plain_spread += spread(plain_x);
        liar_distinct += int(liar_n.size());
        plain_distinct += int(plain_n.size());
    }
    std::printf("mean pairwise |dx|: liar %.4f, no liar %.4f; distinct choices: liar %.1f, no liar %.1f\n",
                liar_spread / seeds, plain_spread / seeds, double(liar_distinct) / seeds, double(plain_distinct) / seeds);
    EXPECT_GT(liar_spread, 1.3 * plain_spread);
    EXPECT_GT(liar_distinct, plain_distinct);
}

TEST(TpeOptions, FlagsAndErrors) {
    const std::string dir = temp_dir("options");
    std::ofstream(dir + "/s.ini") << "[search]\nlearningrate = loguniform(1e-4, 1e-2)\n[tune]\nsearch = tpe\ntrials = 12\n"
                                     "startup_trials = 4\n";
    auto parse = [](std::vector<std::string> args) {
        args.insert(args.begin(), "unet_train");
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        TrainOptions o;
        parse_train_options(int(argv.size()), argv.data(), o, "", tune_file_settings);
        return o;
    };
    auto error = [&](std::vector<std::string> args) {
        try {
            parse(args);
        } catch (const UsageError& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    const TrainOptions o = parse({"--tune", dir + "/s.ini", "--logdir", dir});
    EXPECT_EQ(o.search, "tpe");  // from [tune]
    EXPECT_EQ(o.trials, 12);
    EXPECT_EQ(o.startup_trials, 4);
    EXPECT_EQ(parse({"--tune", dir + "/s.ini", "--logdir", dir, "--startup_trials", "0"}).startup_trials, 0);
    EXPECT_EQ(parse({}).startup_trials, 10);  // Optuna's default
    EXPECT_EQ(error({"--tune", dir + "/s.ini", "--logdir", dir, "--startup_trials", "-1"}),
              "--startup_trials: expected 0 or more");
    EXPECT_EQ(error({"--tune", dir + "/s.ini", "--logdir", dir, "--trials", "0"}),
              "--trials: tpe search needs the number of trials to run");
    EXPECT_EQ(error({"--search", "bayes"}), "--search: expected grid, random or tpe, got 'bayes'");
}

// The plan of a tpe search: the start-up trials are random search's (checked and resolved now),
// the others are drawn later; a value tpe may draw that the settings reject stops the search
// before anything trains; the fingerprint names the kind, the seed, the counts and the space.
TEST(TpeOptions, PlanChecksWhatTpeMayDrawAndFingerprintsTheRules) {
    const std::string dir = temp_dir("plan");
    std::ofstream(dir + "/s.ini") << "[search]\nlearningrate = loguniform(1e-4, 1e-2)\nfg_fraction = uniform(0.2, 0.9)\n"
                                     "filters = range(4, 12, 4)\n[fixed]\nepochs = 2\ndims = 2\n";
    std::ofstream(dir + "/bad.ini") << "[search]\nfg_fraction = uniform(0.2, 1.5)\n[fixed]\ndims = 2\n";
    auto plan = [&](std::vector<std::string> args) {
        static std::deque<std::vector<std::string>> keep;  // argv outlives the plan
        args.insert(args.begin(), "unet_train");
        keep.push_back(args);
        static std::deque<std::vector<char*>> keep_argv;
        keep_argv.emplace_back();
        for (auto& a : keep.back()) keep_argv.back().push_back(a.data());
        TrainOptions o;
        parse_train_options(int(keep_argv.back().size()), keep_argv.back().data(), o, "", tune_file_settings);
        return plan_search(int(keep_argv.back().size()), keep_argv.back().data(), o);
    };
    const SearchPlan p = plan({"--tune", dir + "/s.ini", "--logdir", dir, "--search", "tpe", "--trials", "7",
                               "--startup_trials", "3", "--seed", "5"});
    ASSERT_EQ(p.trials.size(), 7u);
    EXPECT_EQ(std::vector<TrialParams>(p.trials.begin(), p.trials.begin() + 3), random_trials(p.space, 3, 5));
    for (size_t k = 3; k < 7; ++k) EXPECT_TRUE(p.trials[k].empty());
    ASSERT_EQ(p.options.size(), 3u);
    EXPECT_EQ(p.options[1].logdir, dir + "/tune/trial_1");
    EXPECT_EQ(p.options[1].epochs, 2);
    const TrainOptions drawn = p.trial_options(5, {{"learningrate", "0.001"}, {"fg_fraction", "0.5"}, {"filters", "8"}});
    EXPECT_EQ(drawn.logdir, dir + "/tune/trial_5");
    EXPECT_EQ(drawn.resume, "auto");
    EXPECT_FLOAT_EQ(drawn.schedule.learningrate, 0.001f);
    EXPECT_EQ(drawn.model.base_filters, 8);

    const std::string base = p.fingerprint;
    auto fingerprint = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = {"--tune", dir + "/s.ini", "--logdir", dir, "--trials", "7"};
        args.insert(args.end(), extra.begin(), extra.end());
        return plan(args).fingerprint;
    };
    EXPECT_EQ(fingerprint({"--search", "tpe", "--startup_trials", "3", "--seed", "5"}), base);
    EXPECT_NE(fingerprint({"--search", "tpe", "--startup_trials", "4", "--seed", "5"}), base);
    EXPECT_NE(fingerprint({"--search", "tpe", "--startup_trials", "3", "--seed", "6"}), base);
    // tpe with every trial random (startup >= trials) is still not random search.
    EXPECT_NE(fingerprint({"--search", "tpe", "--startup_trials", "7", "--seed", "5"}),
              fingerprint({"--search", "random", "--seed", "5"}));

    try {
        plan({"--tune", dir + "/bad.ini", "--logdir", dir, "--search", "tpe", "--trials", "5", "--startup_trials", "0"});
        FAIL() << "fg_fraction 1.5 accepted";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("--tune: tpe may draw fg_fraction = 1.5"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("--fg_fraction: expected a value in [0, 1]"), std::string::npos) << e.what();
    }
}

// A tpe ledger on disk before its later trials are drawn: rows for every trial, the undrawn ones
// with empty hyperparameter fields, and it loads back as it was.
TEST(TpeLedger, UndrawnTrialsRoundTrip) {
    Ledger l;
    l.dir = temp_dir("ledger");
    l.fingerprint = "tpe";
    for (int k = 0; k < 3; ++k) {
        TrialRecord t;
        t.id = k;
        if (k == 1) t.params = {{"lr", "0.001"}, {"norm", "batch"}};
        l.trials.push_back(t);
    }
    l.save();
    std::ifstream csv(l.dir + "/trials.csv");
    std::string header, row0, row1;
    std::getline(csv, header);
    std::getline(csv, row0);
    std::getline(csv, row1);
    EXPECT_EQ(header, "trial,status,epochs,best_dice,last_dice,seconds,group,failures,reason,lr,norm");
    EXPECT_EQ(row0, "0,pending,0,0.0000,0.0000,0.0,-1,0,,,");
    EXPECT_EQ(row1, "1,pending,0,0.0000,0.0000,0.0,-1,0,,0.001,batch");
    const Ledger back = Ledger::load(l.dir);
    EXPECT_TRUE(back.trials[0].params.empty());
    EXPECT_EQ(back.trials[1].params, l.trials[1].params);
}

TEST(TpeLedger, ParamsTextRoundTrips) {
    const TrialParams p = {{"learningrate", "0.00123"}, {"norm", "a = b"}, {"input_size", "32,32"}};
    EXPECT_EQ(parse_params_text(params_text(p)), p);
    EXPECT_TRUE(parse_params_text("").empty());
    EXPECT_THROW(parse_params_text("no equals sign\n"), std::runtime_error);
}
