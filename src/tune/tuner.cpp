#include "unet/tune/tuner.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "unet/core/check.h"
#include "unet/core/stop_signals.h"
#include "unet/parallel/comm.h"
#include "unet/train/tensorboard_hooks.h"
#include "unet/train/hook_chain.h"
#include "unet/train/run_directory.h"
#include "unet/train/trainer.h"
#include "unet/tune/coordinator.h"
#include "unet/tune/ledger.h"
#include "unet/tune/pbt.h"
#include "unet/tune/pbt_transfer.h"
#include "unet/tune/tpe.h"
#include "unet/log/event_writer.h"
#include "unet/log/summaries.h"

namespace fs = std::filesystem;

namespace unet {

namespace {

// Message tags on the world communicator (apart from the trainer's, which use group communicators).
constexpr int kRequest = 301, kReport = 302, kResult = 303, kAssign = 311, kDecision = 312;
// pbt's exploit: a donor's checkpoint between two group leaders, and each leader's word that its
// part is done ("<bytes> <checksum>" or "error <why>") to the coordinator.
constexpr int kCheckpoint = 313, kMoved = 314;

std::string fnv1a_hex(const std::string& text) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", (unsigned long long)h);
    return out;
}

// How a group leader talks to the coordinator: directly in one process, by messages under mpirun.
class CoordinatorLink {
   public:
    virtual ~CoordinatorLink() = default;
    // The next trial for `group` (-1: none left) and its hyperparameters.
    virtual int request(int group, TrialParams* params) = 0;
    virtual bool report_epoch(int trial, int epoch, double dice) = 0;
    virtual void finish(int trial, const TrialOutcome& outcome) = 0;
};

class LocalLink : public CoordinatorLink {
   public:
    explicit LocalLink(Coordinator& c) : c_(c) {}
    int request(int group, TrialParams* params) override {
        const int trial = c_.next_trial(group, this_host());
        // One group: a pbt round ends when this group's last member of it reports.
        if (trial == Coordinator::kWait) throw std::logic_error("tuner: a lone group was told to wait");
        if (trial >= 0) *params = c_.ledger().trials[size_t(trial)].params;
        return trial;
    }
    bool report_epoch(int trial, int epoch, double dice) override { return c_.report_epoch(trial, epoch, dice); }
    void finish(int trial, const TrialOutcome& o) override { c_.finish_trial(trial, o); }

   private:
    Coordinator& c_;
};

// A group leader's part of a pbt exploit, told by the coordinator while the leader waits for its
// next member (coordinator_mover below):
//   "pbt send <donor> <rank>"                 send trial_<donor>'s checkpoint to that leader,
//   "pbt receive <donor> <recipient> <rank>"  write that leader's message into trial_<recipient>,
//   "pbt copy <donor> <recipient>"            both directories are this group's: copy the files.
// Each ends with a kMoved message to the coordinator.
void leader_moves_checkpoint(Comm& world, const std::string& tune_dir, const std::string& command) {
    std::istringstream in(command.substr(4));
    std::string what;
    int donor = -1, a = -1, b = -1;
    in >> what >> donor >> a >> b;
    auto dir = [&](int trial) { return tune_dir + "/trial_" + std::to_string(trial); };
    char done[64];
    try {
        if (what == "send") {
            const uint64_t sum = pbt_send_checkpoint(world, a, kCheckpoint, dir(donor));
            std::snprintf(done, sizeof done, "0 %016llx", (unsigned long long)sum);
        } else if (what == "receive") {
            const PbtReceived got = pbt_receive_checkpoint(world, b, kCheckpoint, dir(a));
            std::snprintf(done, sizeof done, "%llu %016llx", (unsigned long long)got.bytes, (unsigned long long)got.checksum);
        } else if (what == "copy") {
            const uint64_t bytes = pbt_copy_checkpoint(dir(donor), dir(a));
            std::snprintf(done, sizeof done, "%llu %016llx", (unsigned long long)bytes,
                          (unsigned long long)pbt_file_checksum(dir(a) + "/checkpoint_latest.h5"));
        } else {
            throw std::runtime_error("tuner: unknown pbt command '" + command + "'");
        }
    } catch (const std::exception& e) {
        world.send_text(0, kMoved, std::string("error ") + e.what());
        return;
    }
    world.send_text(0, kMoved, done);
}

class MpiLink : public CoordinatorLink {
   public:
    MpiLink(Comm& world, std::string tune_dir) : world_(world), tune_dir_(std::move(tune_dir)) {}
    // The answer: the trial id, then its hyperparameters as "key = value" lines (a tpe trial's
    // exist only once the coordinator has drawn them). Before it, at a pbt round's end, the
    // coordinator may have this leader send or receive a checkpoint.
    int request(int group, TrialParams* params) override {
        world_.send_text(0, kRequest, std::to_string(group) + " " + this_host());
        std::string answer = world_.receive_text(0, kAssign);
        while (answer.rfind("pbt ", 0) == 0) {
            leader_moves_checkpoint(world_, tune_dir_, answer);
            answer = world_.receive_text(0, kAssign);
        }
        const size_t eol = answer.find('\n');
        const int trial = std::stoi(answer.substr(0, eol));
        if (trial >= 0 && eol != std::string::npos) *params = parse_params_text(answer.substr(eol + 1));
        return trial;
    }
    bool report_epoch(int trial, int epoch, double dice) override {
        char text[96];
        std::snprintf(text, sizeof text, "%d %d %.17g", trial, epoch, dice);
        world_.send_text(0, kReport, text);
        return world_.receive_text(0, kDecision) == "1";
    }
    void finish(int trial, const TrialOutcome& o) override {
        world_.send_text(0, kResult, std::to_string(trial) + " " + o.status + "\n" + o.reason);
    }

   private:
    Comm& world_;
    std::string tune_dir_;
};

// World rank 0's mover for pbt's exploits: the leader of the group that trained the donor sends
// the checkpoint straight to the leader of the group that trained the recipient (each writes only
// its own trial directories, so nothing passes through a disk the two share). Every group is
// idle then, waiting for its next member (the round is over), so each leader takes the command
// where it waits for an assignment. One exploit at a time: no two leaders ever wait on each other.
// The file copy on rank 0 remains for a member whose group is not one of this job's (a --resume
// with another -np or --group_size): where that job left its directory is known only as the run
// directory rank 0 sees.
CheckpointMover coordinator_mover(Comm& world, int groups, int group_size) {
    return [&world, groups, group_size](const PbtTransfer& x) {
        auto ours = [groups](int g) { return g >= 0 && g < groups; };
        if (!ours(x.from_group) || !ours(x.to_group)) {
            PbtMoved m = pbt_move_by_file_copy(x);
            m.how = "file copy by rank 0: group " + std::to_string(ours(x.from_group) ? x.to_group : x.from_group) +
                    " is not one of this job's";
            return m;
        }
        const int from = 1 + x.from_group * group_size, to = 1 + x.to_group * group_size;
        const std::string d = std::to_string(x.donor), r = std::to_string(x.recipient);
        auto done = [&world](int leader) {  // "<bytes> <checksum>" from that leader
            const std::string reply = world.receive_text(leader, kMoved);
            if (reply.rfind("error ", 0) == 0) throw std::runtime_error(reply.substr(6));
            std::istringstream in(reply);
            unsigned long long bytes = 0;
            std::string sum;
            in >> bytes >> sum;
            return std::make_pair(uint64_t(bytes), uint64_t(std::stoull(sum, nullptr, 16)));
        };
        PbtMoved m;
        if (from == to) {
            world.send_text(from, kAssign, "pbt copy " + d + " " + r);
            std::tie(m.bytes, m.checksum) = done(from);
            m.how = "file copy within group " + std::to_string(x.from_group);
            return m;
        }
        world.send_text(from, kAssign, "pbt send " + d + " " + std::to_string(to));
        world.send_text(to, kAssign, "pbt receive " + d + " " + r + " " + std::to_string(from));
        const std::pair<uint64_t, uint64_t> sent = done(from), got = done(to);
        if (sent.second != got.second)
            throw std::runtime_error("pbt exploit: member " + r + " received a checkpoint whose checksum differs from member " +
                                     d + "'s");
        m.bytes = got.first, m.checksum = got.second;
        m.how = "over MPI from group " + std::to_string(x.from_group) + " to group " + std::to_string(x.to_group);
        return m;
    };
}

// The trainer's epoch hook: the group leader asks the coordinator; the other ranks agree (the
// trainer stops the whole group if any rank says stop).
class TrialReporter : public TrainingHooks {
   public:
    TrialReporter(CoordinatorLink& link, int trial, bool leader) : link_(link), trial_(trial), leader_(leader) {}
    bool on_epoch(const EpochReport& r, const ParamStore&) override {
        return !leader_ || link_.report_epoch(trial_, r.epoch, r.val_dice);
    }

   private:
    CoordinatorLink& link_;
    int trial_;
    bool leader_;
};

TrialOutcome outcome_of(const RunSummary& s) {
    if (s.status == "completed") return {"completed", ""};
    if (s.status == "stopped early") return {"stopped", ""};
    if (s.status == "interrupted") return {"interrupted", ""};
    return {"failed", s.status};
}

// One group's life: take a trial, train it over `group`, report, until the coordinator has none.
void run_group(const SearchPlan& plan, Comm& group, CoordinatorLink& link, int group_id) {
    const bool leader = group.is_root();
    for (;;) {
        TrialParams params;
        const int trial = group.max(leader ? link.request(group_id, &params) : INT_MIN);
        if (trial < 0) return;
        if (group.size() > 1) params = parse_params_text(group.broadcast_text(0, leader ? params_text(params) : std::string()));
        TrialReporter reporter(link, trial, leader);
        // One TensorBoard run per trial in its directory, with its hyperparameters as HParams.
        TensorBoardHooks tensorboard(leader);
        HookChain hooks;
        hooks.add(&reporter);
        hooks.add(&tensorboard);
        TrialOutcome outcome;
        try {
            outcome = outcome_of(run_training(plan.trial_options(trial, params), group, &hooks));
        } catch (const DivergenceError& e) {  // every rank of the group sees the same loss
            outcome = {"failed", e.what()};
        } catch (const UsageError& e) {  // settings: the same on every rank of the group
            outcome = {"failed", e.what()};
        } catch (const std::exception& e) {
            tensorboard.on_failure(e.what());
            if (group.size() > 1) throw;  // the others may wait in a collective: end the job
            outcome = {"failed", e.what()};
        }
        if (outcome.status == "failed" && !outcome.reason.empty()) tensorboard.on_failure(outcome.reason);
        if (leader) link.finish(trial, outcome);
    }
}

Ledger open_ledger(const SearchPlan& plan, const TrainOptions& o) {
    const std::string dir = o.logdir + "/tune";
    if (Ledger::exists(dir)) {
        if (o.resume.empty())
            throw UsageError("--tune: " + dir + " holds a search already; continue it with --resume auto, or use another --logdir");
        Ledger l = Ledger::load(dir);
        if (l.fingerprint != plan.fingerprint || l.trials.size() != plan.trials.size())
            throw UsageError("--resume: the search in " + dir + " was started with another search space, --search, "
                             "--trials, --startup_trials or --seed");
        return l;
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create " + dir + ": " + ec.message());
    Ledger l;
    l.dir = dir;
    l.fingerprint = plan.fingerprint;
    for (size_t k = 0; k < plan.trials.size(); ++k) {
        TrialRecord t;
        t.id = int(k);
        t.params = plan.trials[k];
        l.trials.push_back(std::move(t));
    }
    return l;
}

Coordinator make_coordinator(const SearchPlan& plan, const TrainOptions& o,
                             CheckpointMover mover = pbt_move_by_file_copy) {
    SchedulerConfig sc;
    sc.kind = o.scheduler;
    sc.grace_period = o.grace_period;
    sc.reduction_factor = o.reduction_factor;
    sc.perturbation_interval = o.perturbation_interval;
    // A trial's --epochs (the scheduler's horizon); a drawn trial whose settings the parser
    // rejects fails when its group parses them, so any horizon does until then.
    const int default_epochs = o.epochs;
    auto epochs_of = [&plan, default_epochs](const TrialParams& p) {
        try {
            return plan.trial_options(int(plan.trials.size()), p).epochs;
        } catch (const UsageError&) {
            return default_epochs;
        }
    };
    Ledger ledger = open_ledger(plan, o);
    std::vector<int> max_epochs;
    for (const TrialRecord& t : ledger.trials)
        max_epochs.push_back(size_t(t.id) < plan.options.size() ? plan.options[size_t(t.id)].epochs
                             : t.params.empty()                ? default_epochs
                                                               : epochs_of(t.params));
    Coordinator c(std::move(ledger), sc, max_epochs, o.max_failures);
    if (o.search == "tpe") {
        TpeConfig tpe;
        tpe.startup_trials = o.startup_trials;
        tpe.seed = o.seed;
        const SearchSpace* space = &plan.space;
        c.set_drawer([space, tpe](const Ledger& l, int trial) { return tpe_suggest(*space, tpe, tpe_history(l), trial); },
                     epochs_of);
    }
    if (o.scheduler == "pbt") {
        PbtConfig pc;
        pc.interval = o.perturbation_interval;
        pc.quantile = o.pbt_quantile;
        pc.seed = o.seed;
        c.set_pbt(pc, &plan.space, std::move(mover));
    }
    return c;
}

// pbt: each member's hyperparameters over its rounds as TensorBoard scalars pbt/<name> (numeric
// values; step = the epoch the round starts at), in <trial>/pbt/, rewritten whole each time. Each
// round's run of the trainer opened an HParams session in the trial's directory; TensorBoard shows
// the first one it reads, so only the newest (the last round's hyperparameters) is kept.
void write_pbt_scalars(const Ledger& l, int interval) {
    for (const TrialRecord& t : l.trials) {
        const std::string run = l.dir + "/trial_" + std::to_string(t.id), dir = run + "/pbt";
        std::vector<std::pair<fs::file_time_type, fs::path>> sessions;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(run, ec))
            if (e.is_regular_file() && e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
                sessions.emplace_back(e.last_write_time(), e.path());
        std::sort(sessions.begin(), sessions.end());
        for (size_t i = 0; i + 1 < sessions.size(); ++i) fs::remove(sessions[i].second, ec);
        try {
            std::error_code ec;
            fs::create_directories(dir, ec);
            EventWriter w(dir + "/events.out.tfevents.0.pbt_schedule");
            for (size_t r = 0; r < t.schedule.size(); ++r)
                for (const auto& kv : t.schedule[r]) {
                    char* end = nullptr;
                    const double v = std::strtod(kv.second.c_str(), &end);
                    if (end && *end == 0 && end != kv.second.c_str())
                        w.write_value(int64_t(r) * interval, scalar_summary("pbt/" + kv.first, v));
                }
            w.flush();
        } catch (const std::exception& e) {
            std::printf("warning: pbt schedule of trial %d not written to TensorBoard: %s\n", t.id, e.what());
        }
    }
}

std::string search_label(const TrainOptions& o) {
    if (o.search != "tpe") return o.search;
    return "tpe after " + std::to_string(std::min(o.startup_trials, o.trials)) + " random start-up trials";
}

// The ranking, and the best trial's checkpoint and settings in <logdir>/best/.
void finish_search(const Coordinator& c, const SearchPlan& plan, const TrainOptions& o, double seconds) {
    const Ledger& l = c.ledger();
    const bool pbt = o.scheduler == "pbt";
    const std::string md = write_ranking(l, pbt ? o.perturbation_interval : 0);
    if (pbt) {
        write_pbt_scalars(l, o.perturbation_interval);
        std::printf("pbt: %d exploit steps (checkpoint moves) took %.4f s of %.1f s wall time (%.3f%%)\n", l.exploits,
                    l.exploit_seconds, l.elapsed, 100.0 * l.exploit_seconds / std::max(1e-9, l.elapsed));
    }
    int completed = 0, stopped = 0, failed = 0;
    for (const TrialRecord& t : l.trials)
        completed += t.status == "completed", stopped += t.status == "stopped", failed += t.status == "failed";
    std::printf("\nranking (%s/ranking.md):\n%s\n", l.dir.c_str(), md.c_str());
    if (!c.search_finished()) {
        std::printf("search interrupted after %.1f s: continue it with --resume auto\n", seconds);
        return;
    }
    std::printf("search finished: %zu trials (%d completed, %d stopped early, %d failed) in %.1f s\n", l.trials.size(),
                completed, stopped, failed, l.elapsed);
    const std::vector<const TrialRecord*> ranked = rank_trials(l);
    if (ranked.empty()) return;
    const TrialRecord& best = *ranked.front();
    const TrainOptions best_options = plan.trial_options(best.id, best.params);
    const std::string from = best_options.logdir + "/checkpoint_best.h5", dir = o.logdir + "/best";
    std::error_code ec;
    fs::create_directories(dir, ec);
    fs::copy_file(from, dir + "/checkpoint_best.h5", fs::copy_options::overwrite_existing, ec);
    if (ec) {
        std::printf("best trial %d: could not copy %s (%s)\n", best.id, from.c_str(), ec.message().c_str());
        return;
    }
    std::ostringstream about;
    about << "trial = " << best.id << "\nbest_dice = " << best.best_dice() << "\n# " << params_label(best.params) << "\n"
          << best_options.describe();
    write_file_atomically(dir + "/trial.txt", about.str());
    std::printf("best: trial %d, validation Dice %.4f (%s) -> %s/checkpoint_best.h5\n", best.id, best.best_dice(),
                params_label(best.params).c_str(), dir.c_str());
}

// Across hosts without a shared file system, the best trial's checkpoint is on the host of the
// group leader that ran it, not on rank 0's, which copies it to best/. Collective over the world
// once the groups are done: rank 0 names the trial whose checkpoint_best.h5 it lacks (-1: none),
// the lowest rank that holds it (a group leader) sends the file, and rank 0 writes it where that
// trial's own would be, so finish_search copies it as on one host.
constexpr int kBestCheckpoint = 321;

std::string trial_checkpoint(const SearchPlan& plan, int trial) {
    return plan.logdir + "/tune/trial_" + std::to_string(trial) + "/checkpoint_best.h5";
}

// Collective over the world: the lowest rank for which `have` is true (-1: none).
int lowest_holder(Comm& world, bool have) {
    const int top = world.max(have ? INT_MAX - world.rank() : -1);
    return top < 0 ? -1 : INT_MAX - top;
}

void fetch_best_checkpoint(Comm& world, const Coordinator& c, const SearchPlan& plan) {
    const std::vector<const TrialRecord*> ranked = rank_trials(c.ledger());
    const int best = c.search_finished() && !ranked.empty() ? ranked.front()->id : -1;
    const std::string path = best >= 0 ? trial_checkpoint(plan, best) : std::string();
    const bool missing = best >= 0 && !fs::exists(path);
    world.broadcast_text(0, std::to_string(missing ? best : -1));
    if (!missing) return;
    const int holder = lowest_holder(world, false);
    if (holder < 0) return;  // nobody has it: finish_search says that it could not copy it
    const std::string bytes = world.receive_text(holder, kBestCheckpoint);
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    write_file_atomically(path, bytes);
    std::printf("best trial %d: its checkpoint_best.h5 (%zu bytes) came from rank %d's host\n", best, bytes.size(),
                holder);
}

void send_best_checkpoint(Comm& world, const Comm& group, const SearchPlan& plan) {
    const int trial = std::stoi(world.broadcast_text(0, ""));
    if (trial < 0) return;
    const std::string path = trial_checkpoint(plan, trial);
    if (lowest_holder(world, group.is_root() && fs::exists(path)) != world.rank()) return;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    world.send_text(0, kBestCheckpoint, bytes.str());
}

// World rank 0 under mpirun: answers the groups until every one has been told there is no more.
void coordinate(Comm& world, Coordinator& c, int groups) {
    catch_stop_signals();
    int released = 0;
    std::vector<std::pair<int, int>> waiting;  // pbt: (rank, group) told nothing yet: the round is not over
    std::map<int, std::string> host_of;  // each group leader's host, as its requests say
    auto answer = [&](int from, int group) {
        const int trial = c.next_trial(group, host_of[group]);
        if (trial == Coordinator::kWait) return false;
        released += trial < 0;
        world.send_text(from, kAssign,
                        std::to_string(trial) +
                            (trial >= 0 ? "\n" + params_text(c.ledger().trials[size_t(trial)].params) : std::string()));
        return true;
    };
    while (released < groups) {
        int from = 0, tag = 0;
        const std::string msg = world.receive_text(-1, -1, &from, &tag);
        if (stop_signal()) c.stop_handing_out();
        std::istringstream in(msg);
        if (tag == kRequest) {
            int group = 0;
            in >> group >> host_of[group];
            if (!answer(from, group)) waiting.emplace_back(from, group);
        } else if (tag == kReport) {
            int trial = 0, epoch = 0;
            double dice = 0;
            in >> trial >> epoch >> dice;
            world.send_text(from, kDecision, c.report_epoch(trial, epoch, dice) ? "1" : "0");
        } else if (tag == kResult) {
            int trial = 0;
            TrialOutcome o;
            in >> trial >> o.status;
            in.ignore(1);
            std::getline(in, o.reason, '\0');
            c.finish_trial(trial, o);
            // A round may have ended (or the search stopped): the groups that wait get their answer.
            std::vector<std::pair<int, int>> still;
            for (const auto& w : waiting)
                if (!answer(w.first, w.second)) still.push_back(w);
            waiting.swap(still);
        } else {
            throw std::runtime_error("tuner: unexpected message tag " + std::to_string(tag) + " from rank " +
                                     std::to_string(from));
        }
    }
}

}  // namespace

TrainOptions SearchPlan::trial_options(int k, const TrialParams& params) const {
    if (k >= 0 && size_t(k) < options.size() && trials[size_t(k)] == params) return options[size_t(k)];
    TrainOptions t;
    parse_train_options(argc, argv, t, params_text(params), tune_file_settings);
    t.logdir = logdir + "/tune/trial_" + std::to_string(k);
    t.console_tag = "trial " + std::to_string(k);
    t.resume = "auto";  // a trial that ran before (crash, retry, --resume) continues from its checkpoint
    return t;
}

namespace {

// tpe draws values the plan cannot list: check the settings at every choice value and at both
// ends of every other range, each on the first start-up trial, so a value the parser rejects
// stops the search before anything trains (as it would for grid and random).
void check_tpe_edges(const SearchPlan& plan, const TrainOptions& o) {
    const TrialParams base = random_trials(plan.space, 1, o.seed).front();
    auto number = [](double v) {
        char text[40];
        std::snprintf(text, sizeof text, "%.6g", v);
        return std::string(text);
    };
    for (size_t i = 0; i < plan.space.params.size(); ++i) {
        const Hyperparameter& h = plan.space.params[i];
        std::vector<std::string> values;
        switch (h.kind) {
            case Hyperparameter::Kind::choice:
                values = h.choices;
                break;
            case Hyperparameter::Kind::uniform:
            case Hyperparameter::Kind::loguniform:
                values = {number(h.lo), number(h.hi)};
                break;
            case Hyperparameter::Kind::range:
                values = {std::to_string(h.first), std::to_string(h.first + h.step * ((h.last - h.first) / h.step))};
                break;
        }
        for (const std::string& v : values) {
            TrialParams p = base;
            p[i].second = v;
            try {
                plan.trial_options(-1, p);
            } catch (const UsageError& e) {
                throw UsageError("--tune: tpe may draw " + h.name + " = " + v + " (" + params_label(p) + "): " + e.what());
            }
        }
    }
}

}  // namespace

SearchPlan plan_search(int argc, char** argv, const TrainOptions& o) {
    SearchPlan plan;
    plan.argc = argc;
    plan.argv = argv;
    plan.logdir = o.logdir;
    plan.space = read_search_space(o.tune_file);
    if (o.scheduler == "pbt" && o.search != "random")
        throw UsageError("--scheduler: pbt starts from a random population: use --search random, not " + o.search);
    if (o.search == "grid") {
        plan.trials = grid_trials(plan.space, o.trials);
    } else if (o.search == "random") {
        plan.trials = random_trials(plan.space, o.trials, o.seed);
    } else {
        // tpe: the start-up trials are random search's; the others are drawn as groups ask.
        plan.trials = random_trials(plan.space, std::min(o.startup_trials, o.trials), o.seed);
        plan.trials.resize(size_t(o.trials));
    }
    std::string all;
    for (size_t k = 0; k < plan.trials.size() && !plan.trials[k].empty(); ++k) {
        const TrialParams& p = plan.trials[k];
        try {
            plan.options.push_back(plan.trial_options(int(k), p));
        } catch (const UsageError& e) {
            throw UsageError("--tune: trial " + std::to_string(k) + " (" + params_label(p) + "): " + e.what());
        }
        all += params_label(p) + "\n";
    }
    if (o.search == "tpe") {
        check_tpe_edges(plan, o);
        // Nothing but the rules of the draw can be compared before the trials exist: the kind,
        // the seed, the counts and the space itself.
        all = "search tpe\nseed " + std::to_string(o.seed) + "\ntrials " + std::to_string(o.trials) +
              "\nstartup_trials " + std::to_string(o.startup_trials) + "\n" + plan.space.search_text() + all;
    }
    if (o.scheduler == "pbt") {
        pbt_check(plan.space, o.search, o.perturbation_interval, o.pbt_quantile,
                  plan.options.empty() ? o.epochs : plan.options.front().epochs);
        // A resumed population must keep its rounds and its exploit rule.
        all += "pbt interval " + std::to_string(o.perturbation_interval) + " quantile " + std::to_string(o.pbt_quantile) +
               " seed " + std::to_string(o.seed) + "\n";
    }
    plan.fingerprint = fnv1a_hex(all + plan.space.fixed_text());
    return plan;
}

int run_tuning(int argc, char** argv, const TrainOptions& o) {
    const SearchPlan plan = plan_search(argc, argv, o);
    Comm& world = Comm::world();
    // Open MPI's mpirun has a --tune FILE of its own (a file of MCA parameters) and takes it from
    // anywhere on the command line; the program still gets it, but the file was read twice.
    const char* ompi_tune = std::getenv("OMPI_MCA_mca_base_envar_file_prefix");
    if (world.is_root() && ompi_tune && o.tune_file == ompi_tune)
        std::printf("note: mpirun also read %s as its own --tune parameter file (the keyval parser lines above); "
                    "write --tune=%s to keep mpirun out of it\n", ompi_tune, ompi_tune);
    const auto t0 = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    if (world.size() == 1) {
        Coordinator c = make_coordinator(plan, o);
        std::printf("search: %zu trials (%s), scheduler %s, one process\n", plan.trials.size(), search_label(o).c_str(),
                    o.scheduler.c_str());
        LocalLink link(c);
        run_group(plan, world, link, 0);
        finish_search(c, plan, o, seconds());
        return 0;
    }
    const int trainers = world.size() - 1;
    if (o.group_size > trainers || trainers % o.group_size != 0)
        throw UsageError("--group_size: the " + std::to_string(trainers) + " training ranks (all but rank 0) do not split into groups of " +
                         std::to_string(o.group_size));
    const int groups = trainers / o.group_size;
    // Rank 0 gets a communicator of its own; ranks 1.. form groups of consecutive ranks.
    const int color = world.is_root() ? 0 : 1 + (world.rank() - 1) / o.group_size;
    std::unique_ptr<Comm> group = world.split(color);
    if (world.is_root()) {
        Coordinator c = make_coordinator(plan, o, coordinator_mover(world, groups, o.group_size));
        std::printf("search: %zu trials (%s), scheduler %s, %d group%s of %d rank%s\n", plan.trials.size(),
                    search_label(o).c_str(), o.scheduler.c_str(), groups, groups > 1 ? "s" : "", o.group_size,
                    o.group_size > 1 ? "s" : "");
        std::fflush(stdout);
        coordinate(world, c, groups);
        fetch_best_checkpoint(world, c, plan);
        finish_search(c, plan, o, seconds());
    } else {
        MpiLink link(world, plan.logdir + "/tune");
        run_group(plan, *group, link, color - 1);
        send_best_checkpoint(world, *group, plan);
    }
    return 0;
}

}  // namespace unet
