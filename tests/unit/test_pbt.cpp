// --scheduler pbt without MPI or training: the exploit's choice of bottom and top members, the
// explore step's bounds for every kind of hyperparameter, determinism, the ledger's lineage and
// schedules on disk, and whole populations driven through the Coordinator as the tuner drives it,
// with a scripted objective whose "training" reads and writes real checkpoints (HDF5, as the
// trainer's) in each member's directory: the exploit copies the donor's exactly, a failed member
// is replaced from a top member, and a resumed population goes on as the uninterrupted one.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "unet/core/check.h"
#include "unet/io/checkpoint.h"
#include "unet/tune/coordinator.h"
#include "unet/tune/ledger.h"
#include "unet/tune/pbt.h"
#include "unet/tune/pbt_transfer.h"
#include "unet/tune/scheduler.h"
#include "unet/tune/search_space.h"

using namespace unet;
namespace fs = std::filesystem;

namespace {

const char* kSpace =
    "[search]\n"
    "learningrate = loguniform(1e-4, 1e-1)\n"
    "dropout = uniform(0, 0.5)\n"
    "batch_size = range(4, 32, 4)\n"
    "augment = choice(none, flip, all)\n";

std::string temp_dir(const std::string& name) {
    const std::string d = ::testing::TempDir() + "pbt_" + name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
}

uint64_t checksum(const std::string& path) {  // FNV-1a of the file's bytes
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : file_bytes(path)) h = (h ^ c) * 1099511628211ull;
    return h;
}

double value(const TrialParams& p, const std::string& name) {
    for (const auto& kv : p)
        if (kv.first == name) return std::stod(kv.second);
    ADD_FAILURE() << "no " << name;
    return 0;
}

std::string text(const TrialParams& p, const std::string& name) {
    for (const auto& kv : p)
        if (kv.first == name) return kv.second;
    return "";
}

TEST(PbtExploit, QuantileCounts) {
    EXPECT_EQ(pbt_quantile_count(1, 0.25), 0);
    EXPECT_EQ(pbt_quantile_count(2, 0.25), 1);
    EXPECT_EQ(pbt_quantile_count(4, 0.25), 1);
    EXPECT_EQ(pbt_quantile_count(5, 0.25), 2);  // rounded up
    EXPECT_EQ(pbt_quantile_count(8, 0.25), 2);
    EXPECT_EQ(pbt_quantile_count(5, 0.5), 2);  // at most half
    EXPECT_EQ(pbt_quantile_count(10, 0.5), 5);
}

TEST(PbtExploit, BottomQuantileCopiesTopQuantile) {
    const std::vector<double> scores = {0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4};
    std::vector<PbtMember> members;
    for (int i = 0; i < 8; ++i) members.push_back({i, scores[size_t(i)], false});
    PbtConfig c;  // 25%: 2 of 8
    std::set<int> donors_seen;
    for (int round = 0; round < 40; ++round) {
        const std::vector<PbtExploit> e = pbt_exploit(members, c, round);
        ASSERT_EQ(e.size(), 2u);
        EXPECT_EQ(e[0].recipient, 0);  // Dice 0.1
        EXPECT_EQ(e[1].recipient, 5);  // Dice 0.2
        for (const PbtExploit& x : e) {
            EXPECT_TRUE(x.donor == 1 || x.donor == 4) << x.donor;  // Dice 0.9, 0.8
            donors_seen.insert(x.donor);
        }
    }
    EXPECT_EQ(donors_seen, (std::set<int>{1, 4}));  // drawn among the top, not always the best
    c.quantile = 0.5;
    const std::vector<PbtExploit> half = pbt_exploit(members, c, 0);
    std::set<int> recipients;
    for (const PbtExploit& x : half) {
        recipients.insert(x.recipient);
        EXPECT_TRUE(x.donor == 1 || x.donor == 4 || x.donor == 6 || x.donor == 2) << x.donor;
    }
    EXPECT_EQ(recipients, (std::set<int>{0, 3, 5, 7}));
    // Ties: the lower id ranks higher.
    std::vector<PbtMember> tied = {{0, 0.5, false}, {1, 0.5, false}, {2, 0.5, false}, {3, 0.5, false}};
    const std::vector<PbtExploit> t = pbt_exploit(tied, PbtConfig(), 0);
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].recipient, 3);
    EXPECT_EQ(t[0].donor, 0);
}

TEST(PbtExploit, FailedMembersAreAlwaysReplacedAndNeverGive) {
    // Member 1 had the best Dice but its round failed; member 3 failed too.
    std::vector<PbtMember> m = {{0, 0.6, false}, {1, 0.95, true}, {2, 0.7, false}, {3, 0.1, true},
                                {4, 0.4, false}, {5, 0.5, false}, {6, 0.3, false}, {7, 0.2, false}};
    for (int round = 0; round < 20; ++round) {
        const std::vector<PbtExploit> e = pbt_exploit(m, PbtConfig(), round);
        std::set<int> recipients;
        for (const PbtExploit& x : e) {
            recipients.insert(x.recipient);
            EXPECT_TRUE(x.donor == 2 || x.donor == 0) << x.donor;  // the top 2 of those that did not fail
        }
        EXPECT_EQ(recipients, (std::set<int>{1, 3, 6, 7}));
    }
    // Nobody left to give: nothing to copy.
    EXPECT_TRUE(pbt_exploit({{0, 0.5, true}, {1, 0.5, true}}, PbtConfig(), 0).empty());
}

TEST(PbtExplore, StaysInsideTheBoundsForEveryKind) {
    const SearchSpace space = parse_search_space(kSpace, "space.ini");
    const std::vector<TrialParams> starts = {
        random_trials(space, 1, 3).front(),
        {{"learningrate", "0.1"}, {"dropout", "0.5"}, {"batch_size", "32"}, {"augment", "none"}},  // upper ends
        {{"learningrate", "0.0001"}, {"dropout", "0"}, {"batch_size", "4"}, {"augment", "none"}}};  // lower ends
    int scaled = 0, resampled = 0, moved_range = 0, choice_changed = 0, n = 0;
    for (const TrialParams& donor : starts)
        for (int round = 0; round < 60; ++round)
            for (int member = 0; member < 5; ++member) {
                const TrialParams p = pbt_explore(space, donor, PbtConfig(), round, member);
                ++n;
                ASSERT_EQ(p.size(), donor.size());
                const double lr = value(p, "learningrate"), d = value(p, "dropout");
                const long f = std::stol(text(p, "batch_size"));
                EXPECT_GE(lr, 1e-4); EXPECT_LE(lr, 1e-1);
                EXPECT_GE(d, 0.0); EXPECT_LE(d, 0.5);
                EXPECT_GE(f, 4); EXPECT_LE(f, 32); EXPECT_EQ(f % 4, 0) << f;
                const std::string norm = text(p, "augment");
                EXPECT_TRUE(norm == "none" || norm == "flip" || norm == "all") << norm;
                const double ratio = lr / value(donor, "learningrate");
                if (std::fabs(ratio - 0.8) < 1e-4 || std::fabs(ratio - 1.2) < 1e-4) ++scaled; else if (ratio != 1.0) ++resampled;
                moved_range += f != std::stol(text(donor, "batch_size"));
                choice_changed += norm != text(donor, "augment");
            }
    // Most values are scaled by 0.8 or 1.2, about a quarter resampled (or clipped at an end).
    EXPECT_GT(scaled, n / 3);
    EXPECT_GT(resampled, n / 20);
    EXPECT_GT(moved_range, n / 2);  // x0.8 / x1.2 of a range value moves at least one step
    EXPECT_GT(choice_changed, n / 20);
    EXPECT_LT(choice_changed, n / 3);  // choice values mostly kept
}

TEST(PbtExplore, Deterministic) {
    const SearchSpace space = parse_search_space(kSpace, "space.ini");
    const TrialParams donor = random_trials(space, 1, 7).front();
    PbtConfig a, b;
    b.seed = 43;
    int differ = 0;
    for (int round = 0; round < 10; ++round) {
        EXPECT_EQ(pbt_explore(space, donor, a, round, 2), pbt_explore(space, donor, a, round, 2));
        differ += pbt_explore(space, donor, a, round, 2) != pbt_explore(space, donor, b, round, 2);
        differ += pbt_explore(space, donor, a, round, 2) != pbt_explore(space, donor, a, round, 3);
    }
    EXPECT_GT(differ, 10);
    std::vector<PbtMember> m;
    for (int i = 0; i < 8; ++i) m.push_back({i, 0.1 * (i % 5), false});
    std::set<std::vector<int>> donor_lists;
    for (int round = 0; round < 10; ++round) {
        auto donors = [&](const PbtConfig& c) {
            std::vector<int> d;
            for (const PbtExploit& e : pbt_exploit(m, c, round)) d.push_back(e.donor);
            return d;
        };
        EXPECT_EQ(donors(a), donors(a));
        donor_lists.insert(donors(a));
    }
    EXPECT_GT(donor_lists.size(), 1u);
}

TEST(PbtCheck, ClearErrors) {
    const SearchSpace space = parse_search_space(kSpace, "space.ini");
    auto error = [](auto f) {
        try {
            f();
        } catch (const UsageError& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(error([&] { pbt_check(space, "random", 2, 0.25, 6); }), "");
    EXPECT_EQ(error([&] { pbt_check(space, "grid", 2, 0.25, 6); }).rfind("--scheduler: pbt", 0), 0u);
    EXPECT_EQ(error([&] { pbt_check(space, "tpe", 2, 0.25, 6); }).rfind("--scheduler: pbt", 0), 0u);
    const SearchSpace arch = parse_search_space("[search]\nlearningrate = uniform(0.001, 0.01)\nfilters = range(4, 8, 4)\n", "a.ini");
    EXPECT_NE(error([&] { pbt_check(arch, "random", 2, 0.25, 6); }).find("filters (it changes the model"), std::string::npos);
    const SearchSpace choices = parse_search_space("[search]\naugment = choice(none, flip)\n", "c.ini");
    EXPECT_NE(error([&] { pbt_check(choices, "random", 2, 0.25, 6); }).find("needs a uniform, loguniform or range"),
              std::string::npos);
    EXPECT_EQ(error([&] { pbt_check(space, "random", 0, 0.25, 6); }), "--perturbation_interval: expected at least 1 epoch");
    EXPECT_EQ(error([&] { pbt_check(space, "random", 6, 0.25, 6); }).rfind("--perturbation_interval: 6 epochs leave", 0), 0u);
    EXPECT_EQ(error([&] { pbt_check(space, "random", 2, 0.75, 6); }).rfind("--pbt_quantile", 0), 0u);
}

TEST(PbtScheduler, StopsAtEachRoundsEndButNotTheLast) {
    SchedulerConfig c;
    c.kind = "pbt";
    c.perturbation_interval = 2;
    std::vector<std::vector<double>> h = {{0.1}};
    EXPECT_TRUE(should_continue(c, h, 0, 6));
    h[0] = {0.1, 0.2};
    EXPECT_FALSE(should_continue(c, h, 0, 6));
    h[0] = {0.1, 0.2, 0.3};
    EXPECT_TRUE(should_continue(c, h, 0, 6));
    h[0] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    EXPECT_TRUE(should_continue(c, h, 0, 6));  // the run completes
}

TEST(PbtLedger, LineageAndScheduleRoundTrip) {
    const std::string dir = temp_dir("ledger");
    Ledger l;
    l.dir = dir;
    l.fingerprint = "f";
    l.pbt_round = 2;
    l.exploits = 3;
    l.exploit_seconds = 0.125;
    TrialRecord t;
    t.id = 0;
    t.params = {{"learningrate", "0.0012"}, {"augment", "none"}};
    t.schedule = {{{"learningrate", "0.001"}, {"augment", "none"}}, {{"learningrate", "0.0012"}, {"augment", "none"}}};
    t.lineage = {{0, 3}};
    t.replace = true;
    t.status = "waiting";
    t.dice = {0.1, 0.2};
    l.trials.push_back(t);
    TrialRecord plain;  // a member without a schedule yet
    plain.id = 1;
    plain.params = t.params;
    l.trials.push_back(plain);
    l.save();
    const Ledger back = Ledger::load(dir);
    EXPECT_EQ(back.pbt_round, 2);
    EXPECT_EQ(back.exploits, 3);
    EXPECT_DOUBLE_EQ(back.exploit_seconds, 0.125);
    ASSERT_EQ(back.trials.size(), 2u);
    EXPECT_EQ(back.trials[0].schedule, t.schedule);
    EXPECT_EQ(back.trials[0].lineage, t.lineage);
    EXPECT_TRUE(back.trials[0].replace);
    EXPECT_EQ(back.trials[0].status, "waiting");
    EXPECT_TRUE(back.trials[1].schedule.empty());
    EXPECT_FALSE(back.trials[1].replace);
    const std::string md = write_ranking(back, 2);
    EXPECT_NE(md.find("schedule of the best member, trial 0:\n- round 0 (epochs 1-2): learningrate=0.001, augment=none\n"
                      "- round 1 (epochs 3-4): learningrate=0.0012, augment=none (copied member 3's checkpoint after round 0)\n"),
              std::string::npos)
        << md;
}

// A population through the Coordinator. Each member's "training" continues from the checkpoint
// in its directory (a real HDF5 checkpoint: a "weights" array, an optimizer array, the step) and
// its Dice climbs by a gain that depends on the learning rate (best near 1e-2).
struct Population {
    SearchSpace space = parse_search_space(kSpace, "space.ini");
    int members = 6, epochs = 6, groups = 2;
    PbtConfig config;
    std::string dir;
    std::set<std::pair<int, int>> fail_at;  // (member, round): its round fails
    // Checksums of every member's checkpoint at each round's end, before the exploit.
    std::map<std::pair<int, int>, uint64_t> sums_before;
};

Ledger fresh_ledger(const Population& p) {
    Ledger l;
    l.dir = p.dir;
    l.fingerprint = "pbt";
    const std::vector<TrialParams> params = random_trials(p.space, p.members, p.config.seed);
    for (int k = 0; k < p.members; ++k) {
        TrialRecord t;
        t.id = k;
        t.params = params[size_t(k)];
        l.trials.push_back(t);
    }
    return l;
}

// One member's round as a group trains it: stops at the round's end (the scheduler) or completes.
void train_member(Coordinator& c, Population& p, int member) {
    const TrialRecord& t = c.ledger().trials[size_t(member)];
    const std::string mdir = p.dir + "/trial_" + std::to_string(member), latest = mdir + "/checkpoint_latest.h5";
    fs::create_directories(mdir);
    Checkpoint ck;
    if (fs::exists(latest)) ck = read_checkpoint(latest);
    else ck.arrays["weights"] = {0.f}, ck.arrays["optimizer/m"] = {0.f}, ck.integers["step"] = 0, ck.integers["epoch"] = 0;
    const int round = c.ledger().pbt_round;
    if (p.fail_at.count({member, round})) {
        c.report_epoch(member, int(ck.integers["epoch"]), 0.01);
        c.finish_trial(member, {"failed", "loss is NaN"});
        return;
    }
    const double lr = value(t.params, "learningrate");
    const float gain = float(0.1 / (1 + std::pow(std::log10(lr) + 2, 2)));
    for (int e = int(ck.integers["epoch"]); e < p.epochs; ++e) {
        ck.arrays["weights"][0] += gain;
        ck.arrays["optimizer/m"][0] += 1;
        ck.integers["step"] += 10;
        ck.integers["epoch"] = e + 1;
        const bool go_on = c.report_epoch(member, e, ck.arrays["weights"][0]);
        if (!go_on || e + 1 == p.epochs) {
            write_checkpoint(latest, ck);
            p.sums_before[{member, round}] = checksum(latest);
            c.finish_trial(member, {go_on ? "completed" : "stopped", ""});
            return;
        }
    }
}

// Groups ask in turn; a group told to wait asks again after the next result. `stop_after`: the
// job "dies" after that many rounds of members were handed out (the running ones stay running).
Ledger run_population(Population& p, Ledger start, int stop_after = -1, int max_failures = 0) {
    SchedulerConfig sc;
    sc.kind = "pbt";
    sc.perturbation_interval = p.config.interval;
    Coordinator c(std::move(start), sc, std::vector<int>(size_t(p.members), p.epochs), max_failures);
    c.set_quiet(true);
    c.set_pbt(p.config, &p.space);
    std::deque<int> running;
    std::vector<int> idle;
    for (int g = 0; g < p.groups; ++g) idle.push_back(g);
    int handed = 0;
    for (;;) {
        std::vector<int> still_idle;
        for (int g : idle) {
            const int t = c.next_trial(g);
            if (t >= 0) {
                running.push_back(t);
                if (++handed == stop_after) return c.ledger();
            } else if (t == Coordinator::kWait) {
                still_idle.push_back(g);
            }
        }
        idle.swap(still_idle);
        if (running.empty()) break;
        const int t = running.front();
        running.pop_front();
        train_member(c, p, t);
        idle.push_back(0);
    }
    EXPECT_TRUE(c.search_finished());
    return c.ledger();
}

TEST(PbtPopulation, ExploitCopiesTheDonorsCheckpointExactly) {
    Population p;
    p.dir = temp_dir("copy");
    Ledger l = fresh_ledger(p);
    // Stop right after round 0's exploit: every member of round 0 handed out, then one more.
    l = run_population(p, std::move(l), p.members + 1);
    ASSERT_EQ(l.pbt_round, 1);
    int copies = 0;
    for (const TrialRecord& t : l.trials)
        for (const auto& [round, donor] : t.lineage) {
            ++copies;
            const std::string mine = p.dir + "/trial_" + std::to_string(t.id) + "/checkpoint_latest.h5";
            const std::string theirs = p.dir + "/trial_" + std::to_string(donor) + "/checkpoint_latest.h5";
            EXPECT_EQ(checksum(mine), p.sums_before.at({donor, round})) << t.id << " <- " << donor;
            EXPECT_EQ(checksum(mine), checksum(theirs));
            EXPECT_NE(checksum(mine), p.sums_before.at({t.id, round}));
            const Checkpoint a = read_checkpoint(mine), b = read_checkpoint(theirs);
            EXPECT_EQ(a.arrays, b.arrays);
            EXPECT_EQ(a.integers, b.integers);
        }
    EXPECT_EQ(copies, pbt_quantile_count(p.members, p.config.quantile));
    EXPECT_EQ(l.exploits, copies);
}

TEST(PbtPopulation, LineageScheduleAndBounds) {
    Population p;
    p.dir = temp_dir("run");
    p.members = 8;
    const Ledger l = run_population(p, fresh_ledger(p));
    const int rounds = p.epochs / p.config.interval;
    EXPECT_EQ(l.pbt_round, rounds - 1);
    int exploited = 0;
    for (const TrialRecord& t : l.trials) {
        EXPECT_EQ(t.status, "completed");
        EXPECT_EQ(t.epochs(), p.epochs);
        ASSERT_EQ(int(t.schedule.size()), rounds);
        EXPECT_EQ(t.schedule.back(), t.params);
        for (size_t r = 1; r < t.schedule.size(); ++r) {
            bool copied = false;
            for (const auto& [round, donor] : t.lineage)
                if (round + 1 == int(r)) {
                    copied = true;
                    EXPECT_NE(donor, t.id);
                    // At the round's last epoch the donor was in the top quantile, the member in the bottom one.
                    const size_t end = size_t((round + 1) * p.config.interval - 1);
                    const int k = pbt_quantile_count(p.members, p.config.quantile);
                    int above_donor = 0, below_member = 0;
                    for (const TrialRecord& o : l.trials) {
                        above_donor += o.dice[end] > l.trials[size_t(donor)].dice[end];
                        below_member += o.dice[end] < t.dice[end];
                    }
                    EXPECT_LT(above_donor, k) << "donor " << donor << " round " << round;
                    EXPECT_LT(below_member, k) << "member " << t.id << " round " << round;
                    // Its new values are the donor's, perturbed inside the space.
                    const double lr = value(t.schedule[r], "learningrate");
                    EXPECT_GE(lr, 1e-4); EXPECT_LE(lr, 1e-1);
                }
            if (!copied) {
                EXPECT_EQ(t.schedule[r], t.schedule[r - 1]);
            }
        }
        exploited += int(t.lineage.size());
    }
    EXPECT_EQ(exploited, (rounds - 1) * pbt_quantile_count(p.members, p.config.quantile));
}

TEST(PbtPopulation, FailedMemberIsReplacedFromATopMember) {
    Population p;
    p.dir = temp_dir("fail");
    p.fail_at = {{2, 1}};  // member 2's second round fails
    const Ledger l = run_population(p, fresh_ledger(p));
    const TrialRecord& t = l.trials[2];
    EXPECT_EQ(t.status, "completed");
    EXPECT_EQ(t.failures, 1);
    EXPECT_EQ(t.reason, "loss is NaN");
    bool replaced = false;
    for (const auto& [round, donor] : t.lineage)
        if (round == 1) {
            replaced = true;
            // The donor was among the top quantile of round 1's Dice (at epoch 4).
            std::vector<std::pair<double, int>> ranked;
            for (const TrialRecord& o : l.trials)
                if (o.id != 2) ranked.push_back({-o.dice[3], o.id});
            std::sort(ranked.begin(), ranked.end());
            const int k = pbt_quantile_count(p.members, p.config.quantile);
            bool top = false;
            for (int i = 0; i < k; ++i) top = top || ranked[size_t(i)].second == donor;
            EXPECT_TRUE(top) << "donor " << donor;
        }
    EXPECT_TRUE(replaced);
    // The failure is beyond the round's usual quantile: one more copy than in a run without it.
    Population q;
    q.dir = temp_dir("nofail");
    const Ledger clean = run_population(q, fresh_ledger(q));
    EXPECT_EQ(l.exploits, clean.exploits + 1);
}

TEST(PbtPopulation, ResumeMidPopulationIsTheUninterruptedRun) {
    // With a retry (--max_failures 1), the members running when the job died rerun their round
    // from their checkpoints: the resumed population is the uninterrupted one, exploit for exploit.
    Population whole;
    whole.dir = temp_dir("whole1");
    const Ledger expected = run_population(whole, fresh_ledger(whole), -1, 1);
    for (int cut_at : {whole.members - 1, whole.members + 3, 2 * whole.members + 1}) {
        Population cut;
        cut.dir = temp_dir("cut1");
        run_population(cut, fresh_ledger(cut), cut_at, 1);
        const Ledger resumed = run_population(cut, Ledger::load(cut.dir), -1, 1);
        EXPECT_EQ(resumed.pbt_round, expected.pbt_round);
        EXPECT_EQ(resumed.exploits, expected.exploits);
        for (size_t k = 0; k < expected.trials.size(); ++k) {
            const TrialRecord &a = expected.trials[k], &b = resumed.trials[k];
            EXPECT_EQ(b.status, "completed");
            EXPECT_EQ(b.lineage, a.lineage) << "cut at " << cut_at << ", member " << k;
            EXPECT_EQ(b.schedule, a.schedule) << "cut at " << cut_at << ", member " << k;
            EXPECT_EQ(b.dice, a.dice) << "cut at " << cut_at << ", member " << k;
            // Two writes of the same state differ in HDF5's metadata: compare what they hold.
            const Checkpoint x = read_checkpoint(whole.dir + "/trial_" + std::to_string(k) + "/checkpoint_latest.h5"),
                             y = read_checkpoint(cut.dir + "/trial_" + std::to_string(k) + "/checkpoint_latest.h5");
            EXPECT_EQ(x.arrays, y.arrays);
            EXPECT_EQ(x.integers, y.integers);
        }
    }
}

TEST(PbtPopulation, ResumeMidPopulationReplacesMembersLostWithTheJob) {
    Population whole;
    whole.dir = temp_dir("whole");
    const Ledger expected = run_population(whole, fresh_ledger(whole));
    Population cut;
    cut.dir = temp_dir("cut");
    // The job dies in round 1, with members running; a new Coordinator loads the ledger from
    // disk. The running ones count one failure (--max_failures 0): a top member replaces them.
    // So compare with max_failures-independent facts: the lineage up to the cut is kept, and the
    // population finishes every round.
    run_population(cut, fresh_ledger(cut), cut.members + 3);
    const Ledger saved = Ledger::load(cut.dir);
    ASSERT_EQ(saved.pbt_round, 1);
    const Ledger resumed = run_population(cut, saved);
    for (size_t k = 0; k < expected.trials.size(); ++k) {
        const TrialRecord &a = expected.trials[k], &b = resumed.trials[k];
        EXPECT_EQ(b.status, "completed");
        EXPECT_EQ(b.epochs(), cut.epochs);
        ASSERT_GE(b.lineage.size(), saved.trials[k].lineage.size());
        for (size_t i = 0; i < saved.trials[k].lineage.size(); ++i) EXPECT_EQ(b.lineage[i], saved.trials[k].lineage[i]);
        // Round 0 and its exploit happened before the cut: the same as the uninterrupted run.
        EXPECT_EQ(b.schedule[0], a.schedule[0]);
        EXPECT_EQ(b.schedule[1], a.schedule[1]);
        EXPECT_EQ(std::vector<double>(b.dice.begin(), b.dice.begin() + 2), std::vector<double>(a.dice.begin(), a.dice.begin() + 2));
    }
}

TEST(PbtPopulation, GroupsWaitForTheRoundsEnd) {
    Population p;
    p.dir = temp_dir("wait");
    p.members = 3;
    SchedulerConfig sc;
    sc.kind = "pbt";
    Coordinator c(fresh_ledger(p), sc, std::vector<int>(3, p.epochs), 0);
    c.set_quiet(true);
    c.set_pbt(p.config, &p.space);
    EXPECT_EQ(c.next_trial(0), 0);
    EXPECT_EQ(c.next_trial(1), 1);
    EXPECT_EQ(c.next_trial(2), 2);
    train_member(c, p, 0);
    EXPECT_EQ(c.next_trial(0), Coordinator::kWait);  // round 0 still runs on groups 1 and 2
    train_member(c, p, 1);
    EXPECT_EQ(c.next_trial(1), Coordinator::kWait);
    train_member(c, p, 2);  // the round ends: everyone is pending again
    EXPECT_EQ(c.ledger().pbt_round, 1);
    EXPECT_EQ(c.next_trial(0), 0);
}

}  // namespace

namespace {

TEST(PbtPopulation, ARoundThatEndedWhileStoppingIsExploitedOnResume) {
    // SIGTERM arrives while the round's last member ends normally: the search stops before the
    // exploit. The resumed search does the exploit first, as the uninterrupted one did.
    Population whole;
    whole.dir = temp_dir("stop_whole");
    whole.members = 4;
    const Ledger expected = run_population(whole, fresh_ledger(whole));
    Population p;
    p.dir = temp_dir("stop");
    p.members = 4;
    SchedulerConfig sc;
    sc.kind = "pbt";
    {
        Coordinator c(fresh_ledger(p), sc, std::vector<int>(4, p.epochs), 0);
        c.set_quiet(true);
        c.set_pbt(p.config, &p.space);
        for (int g = 0; g < 4; ++g) ASSERT_EQ(c.next_trial(g), g);
        for (int m = 0; m < 3; ++m) train_member(c, p, m);
        c.stop_handing_out();
        train_member(c, p, 3);
        EXPECT_EQ(c.ledger().pbt_round, 0);
        for (const TrialRecord& t : c.ledger().trials) EXPECT_EQ(t.status, "waiting");
    }
    const Ledger resumed = run_population(p, Ledger::load(p.dir));
    EXPECT_EQ(resumed.exploits, expected.exploits);
    for (size_t k = 0; k < 4; ++k) {
        EXPECT_EQ(resumed.trials[k].lineage, expected.trials[k].lineage) << k;
        EXPECT_EQ(resumed.trials[k].schedule, expected.trials[k].schedule) << k;
        EXPECT_EQ(resumed.trials[k].dice, expected.trials[k].dice) << k;
    }
}

}  // namespace

namespace {

// The exploit's mover sees the groups that trained the donor and the recipient in the round that
// ended (under mpirun, whose leaders then exchange the checkpoint), and a group asking for its
// next member gets the one it trained (its checkpoint is in that group's directory).
TEST(PbtPopulation, TheMoverGetsTheDonorsAndRecipientsGroupsAndGroupsKeepTheirMembers) {
    Population p;
    p.dir = temp_dir("mover");
    p.members = 4;
    SchedulerConfig sc;
    sc.kind = "pbt";
    Coordinator c(fresh_ledger(p), sc, std::vector<int>(4, p.epochs), 0);
    c.set_quiet(true);
    std::vector<PbtTransfer> moves;
    c.set_pbt(p.config, &p.space, [&moves](const PbtTransfer& x) {
        moves.push_back(x);
        return pbt_move_by_file_copy(x);
    });
    // Round 0: group g trains member 3 - g.
    for (int g = 3; g >= 0; --g) ASSERT_EQ(c.next_trial(g), 3 - g);
    for (int m = 0; m < 4; ++m) train_member(c, p, m);
    ASSERT_EQ(c.ledger().pbt_round, 1);
    ASSERT_EQ(moves.size(), 1u);
    const PbtTransfer& x = moves[0];
    EXPECT_EQ(x.from_group, 3 - x.donor);
    EXPECT_EQ(x.to_group, 3 - x.recipient);
    EXPECT_EQ(x.from_dir, p.dir + "/trial_" + std::to_string(x.donor));
    EXPECT_EQ(x.to_dir, p.dir + "/trial_" + std::to_string(x.recipient));
    EXPECT_EQ(checksum(x.to_dir + "/checkpoint_latest.h5"), p.sums_before.at({x.donor, 0}));
    // Round 1, asked in another order: each group gets its own member back.
    for (int g : {1, 3, 0, 2}) EXPECT_EQ(c.next_trial(g), 3 - g);
}

// The message an exploit sends (pbt_transfer.h), without MPI: what arrives is the donor's
// checkpoint byte for byte, and a message that is cut short or says "error" is refused.
TEST(PbtTransfer, TheMessageCarriesTheCheckpointExactly) {
    const std::string from = temp_dir("msg_from"), to = temp_dir("msg_to");
    Checkpoint ck;
    ck.arrays["weights"] = {1.5f, -2.25f, 3.0f};
    ck.arrays["optimizer/m"] = {0.125f};
    ck.integers["step"] = 40;
    write_checkpoint(from + "/checkpoint_latest.h5", ck);
    ck.integers["step"] = 30;
    write_checkpoint(from + "/checkpoint_best.h5", ck);
    write_checkpoint(to + "/checkpoint_latest.h5", Checkpoint{});
    const std::string message = pbt_pack_checkpoint(from);
    const PbtReceived got = pbt_unpack_checkpoint(message, to);
    EXPECT_EQ(got.checksum, checksum(from + "/checkpoint_latest.h5"));
    EXPECT_EQ(checksum(to + "/checkpoint_latest.h5"), checksum(from + "/checkpoint_latest.h5"));
    EXPECT_EQ(checksum(to + "/checkpoint_best.h5"), checksum(from + "/checkpoint_best.h5"));
    EXPECT_EQ(got.bytes, fs::file_size(from + "/checkpoint_latest.h5") + fs::file_size(from + "/checkpoint_best.h5"));
    EXPECT_EQ(read_checkpoint(to + "/checkpoint_latest.h5").arrays, read_checkpoint(from + "/checkpoint_latest.h5").arrays);
    EXPECT_EQ(read_checkpoint(to + "/checkpoint_latest.h5").integers.at("step"), 40);
    const std::string other = temp_dir("msg_other");
    EXPECT_THROW(pbt_unpack_checkpoint(message.substr(0, message.size() - 10), other), std::runtime_error);
    EXPECT_THROW(pbt_unpack_checkpoint(message + "x", other), std::runtime_error);
    try {
        pbt_unpack_checkpoint("error pbt exploit: no /x/checkpoint_latest.h5", other);
        ADD_FAILURE() << "an error message was written as a checkpoint";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "pbt exploit: no /x/checkpoint_latest.h5");
    }
    EXPECT_THROW(pbt_pack_checkpoint(other), std::runtime_error);  // nothing there to send
}

}  // namespace
