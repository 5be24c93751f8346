// Hyperparameter tuning without MPI: search-space files, grid order, seeded sampling, the
// schedulers' decisions on scripted Dice sequences, the ledger on disk and resuming from it,
// and DistMIS's JSON config.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "unet/train/json_config.h"
#include "unet/train/train_options.h"
#include "unet/core/check.h"
#include "unet/nn/unet.h"
#include "unet/train/hook_chain.h"
#include "unet/tune/coordinator.h"
#include "unet/tune/ledger.h"
#include "unet/tune/scheduler.h"
#include "unet/tune/search_space.h"

using namespace unet;

namespace {

const char* kSpace =
    "# a comment\n"
    "[search]\n"
    "learningrate = choice(1e-4, 1e-3)\n"
    "norm = choice(batch, group)\n"
    "filters = range(8, 24, 8)\n"
    "[fixed]\n"
    "epochs = 4\n"
    "[tune]\n"
    "scheduler = asha\n";

std::string error_of(const std::string& text) {
    try {
        parse_search_space(text, "space.ini");
    } catch (const UsageError& e) {
        return e.what();
    }
    return "";
}

TrainOptions parse(std::vector<std::string> args, const std::string& overrides = "") {
    args.insert(args.begin(), "unet_train");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    TrainOptions o;
    EXPECT_TRUE(parse_train_options(int(argv.size()), argv.data(), o, overrides, tune_file_settings));
    return o;
}

std::string temp_dir(const std::string& name) {
    const std::string d = ::testing::TempDir() + "tune_" + name;
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
}

}  // namespace

TEST(SearchSpace, ParsesSectionsAndDistributions) {
    const SearchSpace s = parse_search_space(kSpace, "space.ini");
    ASSERT_EQ(s.params.size(), 3u);
    EXPECT_EQ(s.params[0].choices, (std::vector<std::string>{"1e-4", "1e-3"}));
    EXPECT_EQ(s.params[2].kind, Hyperparameter::Kind::range);
    EXPECT_EQ(s.fixed_text(), "epochs = 4\n");
    EXPECT_EQ(s.tune.at("scheduler"), "asha");
    EXPECT_EQ(s.line_of.at("filters"), 5);
}

TEST(SearchSpace, BadLinesGiveOneErrorNamingTheLine) {
    EXPECT_EQ(error_of("[search]\nlearningrate = choice(1e-4, 1e-3\n"),
              "--tune: space.ini:2: learningrate: expected choice(...), uniform(lo, hi), loguniform(lo, hi) or "
              "range(lo, hi[, step]), got 'choice(1e-4, 1e-3'");
    EXPECT_EQ(error_of("[search]\n\nlr = uniform(1, x)\n"), "--tune: space.ini:3: expected a number, got 'x'");
    EXPECT_EQ(error_of("[search]\nlr = loguniform(0, 1)\n"), "--tune: space.ini:2: lr: loguniform(lo, hi) needs lo > 0");
    EXPECT_EQ(error_of("[search]\nlr = normal(0, 1)\n"),
              "--tune: space.ini:2: lr: unknown distribution 'normal' (choice, uniform, loguniform, range)");
    EXPECT_EQ(error_of("lr = choice(1)\n"), "--tune: space.ini:1: 'lr' comes before any [search], [fixed] or [tune] section");
    EXPECT_EQ(error_of("[search]\nlr = choice(1)\n[fixed]\nlr = 2\n"),
              "--tune: space.ini:4: lr is set twice (searched and fixed settings share one name space)");
    EXPECT_EQ(error_of("[serch]\n"), "--tune: space.ini:1: unknown section [serch] (search, fixed, tune)");
    EXPECT_EQ(error_of("[search]\nthis is not a setting\n"), "--tune: space.ini:2: expected 'name = value', got 'this is not a setting'");
    EXPECT_EQ(error_of("[search]\nf = range(8, 4)\n"), "--tune: space.ini:2: f: range(lo, hi[, step]) needs lo <= hi and step >= 1");
    EXPECT_EQ(error_of("[fixed]\nepochs = 3\n"), "--tune: space.ini: no hyperparameters in a [search] section");
    EXPECT_NE(error_of("[tune]\nlearningrate = 1\n"), "");
}

TEST(SearchSpace, UnknownFlagNamesItsLine) {
    const std::string dir = temp_dir("unknown_flag");
    std::ofstream(dir + "/s.ini") << "[search]\nlearningrate = choice(1e-3)\n[fixed]\n\nlearning_rate = 1\n";
    try {
        parse({"--tune", dir + "/s.ini", "--logdir", dir});
        FAIL() << "no error";
    } catch (const UsageError& e) {
        EXPECT_EQ(std::string(e.what()), "--tune: " + dir + "/s.ini:5: 'learning_rate' is not a unet_train flag");
    }
}

TEST(SearchSpace, GridVisitsEveryCombinationFirstKeySlowest) {
    const std::vector<TrialParams> g = grid_trials(parse_search_space(kSpace, "space.ini"));
    ASSERT_EQ(g.size(), 12u);
    EXPECT_EQ(params_label(g[0]), "learningrate=1e-4, norm=batch, filters=8");
    EXPECT_EQ(params_label(g[1]), "learningrate=1e-4, norm=batch, filters=16");
    EXPECT_EQ(params_label(g[3]), "learningrate=1e-4, norm=group, filters=8");
    EXPECT_EQ(params_label(g[11]), "learningrate=1e-3, norm=group, filters=24");
    EXPECT_EQ(grid_trials(parse_search_space(kSpace, "space.ini"), 5).size(), 5u);
    EXPECT_THROW(grid_trials(parse_search_space("[search]\nlr = uniform(0, 1)\n", "s")), UsageError);
}

TEST(SearchSpace, RandomSamplesAreSeededAndInRange) {
    const SearchSpace s = parse_search_space(
        "[search]\nlr = loguniform(1e-4, 1e-2)\ndrop = uniform(0, 0.5)\nf = range(8, 32, 8)\nnorm = choice(a, b, c)\n", "s");
    const auto a = random_trials(s, 50, 7), b = random_trials(s, 50, 7), c = random_trials(s, 50, 8);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    // The first draw of seed 7 is fixed by mt19937_64 and our mapping: the same on every machine.
    EXPECT_EQ(params_label(a[0]), "lr=0.00322679, drop=0.474651, f=8, norm=c");
    EXPECT_EQ(params_label(a[0]), params_label(random_trials(s, 1, 7)[0]));
    std::set<std::string> filters, norms;
    for (const TrialParams& t : a) {
        const double lr = std::stod(t[0].second), drop = std::stod(t[1].second);
        EXPECT_GE(lr, 1e-4);
        EXPECT_LE(lr, 1e-2);
        EXPECT_GE(drop, 0.0);
        EXPECT_LT(drop, 0.5);
        filters.insert(t[2].second);
        norms.insert(t[3].second);
    }
    EXPECT_EQ(filters, (std::set<std::string>{"8", "16", "24", "32"}));
    EXPECT_EQ(norms, (std::set<std::string>{"a", "b", "c"}));
}

TEST(Scheduler, AshaRungsAndDecisions) {
    SchedulerConfig c;
    c.kind = "asha";
    c.grace_period = 1;
    c.reduction_factor = 2;
    EXPECT_EQ(asha_rungs(c, 8), (std::vector<int>{1, 2, 4}));
    // Scripted: trials report in this order; each decision sees only what came before.
    std::vector<std::vector<double>> h(4);
    auto report = [&](int t, double d) {
        h[size_t(t)].push_back(d);
        return should_continue(c, h, t, 8);
    };
    EXPECT_TRUE(report(0, 0.5));   // alone at rung 1: keep the best max(1, 1/2) = 1
    EXPECT_FALSE(report(1, 0.4));  // 2 at rung 1, keep 1: 0.5 is better
    EXPECT_TRUE(report(2, 0.6));   // 3 at rung 1, keep 1: it is the best
    EXPECT_TRUE(report(3, 0.55));  // 4 at rung 1, keep 2: second best
    EXPECT_TRUE(report(0, 0.7));   // rung 2: alone
    EXPECT_TRUE(report(0, 0.72));  // epoch 3: no rung, always continue
    EXPECT_FALSE(report(2, 0.65)); // rung 2: 2 there, keep 1, 0.7 is better
    EXPECT_TRUE(report(3, 0.8));   // rung 2: 3 there, keep 1, the best
}

TEST(Scheduler, FifoNeverStopsAndMedianRule) {
    SchedulerConfig fifo;
    std::vector<std::vector<double>> h = {{0.1, 0.2}, {0.9, 0.9}, {0.8, 0.9}, {0.0}};
    EXPECT_TRUE(should_continue(fifo, h, 3, 10));
    SchedulerConfig m;
    m.kind = "median";
    m.grace_period = 2;
    // Trial 3 after 1 epoch: inside the grace period.
    EXPECT_TRUE(should_continue(m, h, 3, 10));
    h[3].push_back(0.3);  // best 0.3; others' means over 2 epochs: 0.15, 0.9, 0.85 -> median 0.85
    EXPECT_FALSE(should_continue(m, h, 3, 10));
    h[3].back() = 0.86;  // best 0.86 >= 0.85
    EXPECT_TRUE(should_continue(m, h, 3, 10));
    // With fewer than 3 peers at that many epochs, no verdict.
    std::vector<std::vector<double>> few = {{0.9, 0.9}, {0.9, 0.9}, {0.1, 0.1}};
    EXPECT_TRUE(should_continue(m, few, 2, 10));
    SchedulerConfig bad;
    bad.kind = "hyperband";
    EXPECT_THROW(validate(bad), UsageError);
}

TEST(Ledger, RoundTripAndRanking) {
    Ledger l;
    l.dir = temp_dir("ledger");
    l.fingerprint = "abc";
    l.elapsed = 12.5;
    for (int k = 0; k < 3; ++k) {
        TrialRecord t;
        t.id = k;
        t.params = {{"learningrate", k == 1 ? "1e-3" : "1e-4"}, {"norm", "batch, odd"}};
        t.dice = {0.1 * k, 0.2 * k};
        t.status = k == 2 ? "failed" : "completed";
        t.reason = k == 2 ? "loss is NaN at step 3" : "";
        l.trials.push_back(t);
    }
    l.save();
    const Ledger back = Ledger::load(l.dir);
    EXPECT_EQ(back.fingerprint, "abc");
    EXPECT_DOUBLE_EQ(back.elapsed, 12.5);
    ASSERT_EQ(back.trials.size(), 3u);
    EXPECT_EQ(back.trials[1].params, l.trials[1].params);
    EXPECT_EQ(back.trials[2].reason, "loss is NaN at step 3");
    EXPECT_EQ(back.trials[1].dice, l.trials[1].dice);
    const auto ranked = rank_trials(back);
    ASSERT_EQ(ranked.size(), 2u);  // the failed one is not ranked
    EXPECT_EQ(ranked[0]->id, 1);
    std::ifstream csv(l.dir + "/trials.csv");
    std::string header, row;
    std::getline(csv, header);
    std::getline(csv, row);
    EXPECT_EQ(header, "trial,status,epochs,best_dice,last_dice,seconds,group,failures,reason,learningrate,norm");
    EXPECT_EQ(row, "0,completed,2,0.0000,0.0000,0.0,-1,0,,1e-4,\"batch, odd\"");
    const std::string md = write_ranking(back);
    EXPECT_NE(md.find("| 1 | 1 | 0.2000 | 2 | completed |"), std::string::npos) << md;
    EXPECT_NE(md.find("trial 2 (learningrate=1e-4, norm=batch, odd): loss is NaN at step 3"), std::string::npos);
}

TEST(Coordinator, HandsOutReportsAndResumes) {
    Ledger l;
    l.dir = temp_dir("coordinator");
    l.fingerprint = "f";
    for (int k = 0; k < 4; ++k) {
        TrialRecord t;
        t.id = k;
        t.params = {{"learningrate", std::to_string(k)}};
        l.trials.push_back(t);
    }
    SchedulerConfig sc;
    sc.kind = "asha";
    sc.reduction_factor = 2;
    {
        Coordinator c(l, sc, {4, 4, 4, 4}, 1);
        c.set_quiet(true);
        EXPECT_EQ(c.next_trial(0), 0);
        EXPECT_EQ(c.next_trial(1), 1);
        EXPECT_TRUE(c.report_epoch(0, 0, 0.5));
        EXPECT_FALSE(c.report_epoch(1, 0, 0.4));  // ASHA: worse at rung 1
        c.finish_trial(1, {"stopped", ""});
        c.finish_trial(0, {"failed", "loss is NaN at step 7"});  // one retry allowed
        EXPECT_EQ(c.ledger().trials[0].status, "pending");
        EXPECT_EQ(c.next_trial(1), 0);  // the retry comes first
        EXPECT_EQ(c.next_trial(0), 2);
        // The job dies here: trials 0 and 2 are "running" on disk.
    }
    const Ledger on_disk = Ledger::load(l.dir);
    EXPECT_EQ(on_disk.trials[0].status, "running");
    EXPECT_EQ(on_disk.trials[1].status, "stopped");
    Coordinator c(on_disk, sc, {4, 4, 4, 4}, 1);
    c.set_quiet(true);
    // Trial 0 had failed once already: the crash is its second failure, over --max_failures 1.
    EXPECT_EQ(c.ledger().trials[0].status, "failed");
    EXPECT_EQ(c.ledger().trials[0].reason, "the job ended while it ran");
    EXPECT_EQ(c.ledger().trials[2].status, "pending");
    EXPECT_EQ(c.ledger().trials[2].failures, 1);
    EXPECT_EQ(c.next_trial(0), 2);
    EXPECT_EQ(c.next_trial(1), 3);
    EXPECT_EQ(c.next_trial(2), -1);
    c.finish_trial(3, {"interrupted", ""});  // SIGTERM: back to pending, no more trials handed out
    EXPECT_EQ(c.ledger().trials[3].status, "pending");
    EXPECT_EQ(c.ledger().trials[3].failures, 0);
    EXPECT_TRUE(c.stopping());
    c.finish_trial(2, {"completed", ""});
    EXPECT_FALSE(c.search_finished());
}

TEST(TuneOptions, TrialSettingsWinOverTheCommandLineAndTheFixedSection) {
    const std::string dir = temp_dir("layers");
    std::ofstream(dir + "/s.ini") << "[search]\nlearningrate = choice(1e-3)\n[fixed]\nfilters = 12\ndepth = 3\n"
                                     "[tune]\nscheduler = median\n";
    const TrainOptions o = parse({"--tune", dir + "/s.ini", "--logdir", dir, "--depth", "2", "--learningrate", "0.5",
                                  "--input_size", "32,32"},
                                 "learningrate = 0.002\namsgrad = true\n");
    EXPECT_FLOAT_EQ(o.schedule.learningrate, 0.002f);
    EXPECT_TRUE(o.optimizer.amsgrad);
    EXPECT_EQ(o.model.base_filters, 12);  // [fixed]
    EXPECT_EQ(o.model.depth, 2);          // command line over [fixed]
    EXPECT_EQ(o.scheduler, "median");     // [tune]
    EXPECT_THROW(parse({"--tune", dir + "/s.ini"}), UsageError);  // no --logdir
}

TEST(TuneOptions, DistMisJsonConfigMapsOntoOurFlags) {
    const std::string dir = temp_dir("json");
    std::ofstream(dir + "/c.json") << R"({"num_replicas": 4, "batch_size_per_replica": 2, "num_epochs": 7, "debug": true,
                                         "input_size": [32, 32]})";
    const TrainOptions o = parse({"--config", dir + "/c.json"});
    EXPECT_EQ(o.batch_size, 8);
    EXPECT_EQ(o.epochs, 7);
    EXPECT_EQ(o.group_size, 5);  // 4 workers + a parameter server
    EXPECT_EQ(o.print_every, 1);
    EXPECT_EQ(o.input_size, (Dims{32, 32}));
    const TrainOptions ar = parse({"--config", dir + "/c.json", "--sync", "allreduce", "--batch_size", "6"});
    EXPECT_EQ(ar.group_size, 4);
    EXPECT_EQ(ar.batch_size, 6);  // the command line wins
    EXPECT_EQ(json_config_to_settings(R"({"num_epochs": 3, "learningrate": 0.001})", "x.json"),
              "learningrate = 0.001\nepochs = 3\n");  // nlohmann::json keeps keys sorted
    EXPECT_THROW(json_config_to_settings("{not json", "x.json"), UsageError);
    std::ofstream(dir + "/bad.json") << R"({"num_gpus": 4})";
    EXPECT_THROW(parse({"--config", dir + "/bad.json"}), UsageError);
}

TEST(HookChain, EveryHookHearsEveryEpochAndAnyStopStops) {
    struct Counting : TrainingHooks {
        bool answer;
        int epochs = 0, ends = 0;
        explicit Counting(bool a) : answer(a) {}
        bool on_epoch(const EpochReport&, const ParamStore&) override { return ++epochs, answer; }
        void on_end(const RunSummary&) override { ++ends; }
    };
    Counting go(true), stop(false), also(true);
    HookChain chain;
    chain.add(&go);
    chain.add(&stop);
    chain.add(&also);
    chain.add(nullptr);  // ignored
    UNetConfig cfg;
    cfg.dims = 2;
    cfg.base_filters = 4;
    cfg.depth = 1;
    UNet model(cfg);
    EXPECT_FALSE(chain.on_epoch(EpochReport{}, model.store()));
    EXPECT_EQ(go.epochs + stop.epochs + also.epochs, 3);  // the hook after the stopping one was asked too
    chain.on_end(RunSummary{});
    EXPECT_EQ(go.ends + stop.ends + also.ends, 3);
}
