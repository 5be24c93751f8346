#include "unet/tune/coordinator.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "unet/tune/pbt_transfer.h"

namespace unet {

Coordinator::Coordinator(Ledger ledger, SchedulerConfig scheduler, std::vector<int> max_epochs, int max_failures)
    : ledger_(std::move(ledger)),
      scheduler_(scheduler),
      max_epochs_(std::move(max_epochs)),
      max_failures_(max_failures),
      started_(ledger_.trials.size()) {
    if (max_epochs_.size() != ledger_.trials.size()) throw std::logic_error("Coordinator: one max_epochs per trial");
    elapsed_before_ = ledger_.elapsed;
    for (TrialRecord& t : ledger_.trials) {
        if (t.status != "running") continue;
        // The job ended under this trial (a rank died, the machine went down): one failure.
        ++t.failures;
        t.reason = "the job ended while it ran";
        t.status = t.failures > max_failures_ ? "failed" : "pending";
    }
    save();
}

double Coordinator::clock() const {
    return elapsed_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Coordinator::say(const char* format, ...) const {
    if (quiet_) return;
    char text[1024];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    std::printf("[tune %7.1fs] %s\n", clock(), text);
    std::fflush(stdout);
}

void Coordinator::save() {
    ledger_.elapsed = clock();
    ledger_.save();
}

void Coordinator::set_drawer(TrialDrawer draw, std::function<int(const TrialParams&)> epochs_of) {
    draw_ = std::move(draw);
    epochs_of_ = std::move(epochs_of);
}

PbtMoved pbt_move_by_file_copy(const PbtTransfer& x) {
    PbtMoved m;
    m.bytes = pbt_copy_checkpoint(x.from_dir, x.to_dir);
    m.checksum = pbt_file_checksum(x.to_dir + "/checkpoint_latest.h5");
    m.how = "file copy";
    return m;
}

int Coordinator::next_trial(int group, const std::string& host) {
    if (stopping_) return -1;
    // pbt: a member this group trained before first (its checkpoint is in this group's directory).
    const TrialRecord* own = nullptr;
    for (const TrialRecord& t : ledger_.trials)
        if (pbt_ && !own && t.status == "pending" && t.group == group) own = &t;
    for (TrialRecord& t : ledger_.trials) {
        if (t.status != "pending" || (own && &t != own)) continue;
        if (t.params.empty()) {
            if (!draw_) throw std::logic_error("Coordinator: trial " + std::to_string(t.id) + " has no hyperparameters");
            // Drawn from the ledger as it stands now, before this trial counts as running.
            t.params = draw_(ledger_, t.id);
            if (epochs_of_) max_epochs_[size_t(t.id)] = epochs_of_(t.params);
        }
        t.status = "running";
        t.group = group;
        t.host = host;
        const std::string on = host.empty() ? "" : " on " + host;
        started_[size_t(t.id)] = std::chrono::steady_clock::now();
        if (pbt_) say("member %d round %d (epochs %d-%d) -> group %d%s%s: %s", t.id, ledger_.pbt_round,
                      ledger_.pbt_round * pbt_config_.interval + 1,
                      std::min(max_epochs_[size_t(t.id)], (ledger_.pbt_round + 1) * pbt_config_.interval), group,
                      on.c_str(), t.failures ? " (retry)" : "", params_label(t.params).c_str());
        else say("trial %d -> group %d%s%s: %s", t.id, group, on.c_str(),
                 t.failures ? " (retry)" : t.epochs() ? " (resumed)" : "", params_label(t.params).c_str());
        save();
        return t.id;
    }
    return pbt_ && !search_finished() ? kWait : -1;
}

bool Coordinator::report_epoch(int trial, int epoch, double dice) {
    TrialRecord& t = ledger_.trials.at(size_t(trial));
    // A trial resumed from its checkpoint reports from the epoch it restarts at.
    t.dice.resize(size_t(epoch));
    t.dice.push_back(dice);
    if (dice >= t.best_dice()) t.best_at = clock();
    std::vector<std::vector<double>> histories;
    for (const TrialRecord& r : ledger_.trials) histories.push_back(r.dice);
    const bool go_on = should_continue(scheduler_, histories, trial, max_epochs_[size_t(trial)]);
    say("trial %d epoch %d: validation Dice %.4f%s", trial, epoch + 1, dice,
        go_on ? "" : (" -> stopped by " + scheduler_.kind).c_str());
    save();
    return go_on;
}

void Coordinator::finish_trial(int trial, const TrialOutcome& outcome) {
    TrialRecord& t = ledger_.trials.at(size_t(trial));
    t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started_[size_t(trial)]).count();
    if (outcome.status == "interrupted") {
        // A signal stopped the job: the trial continues from its checkpoint on --resume.
        t.status = "pending";
        stopping_ = true;
        say("trial %d interrupted after %d epochs; the search stops (continue with --resume auto)", trial, t.epochs());
    } else if (outcome.status == "failed") {
        ++t.failures;
        t.reason = outcome.reason;
        t.status = t.failures > max_failures_ ? "failed" : "pending";
        const bool last_round = pbt_ && (ledger_.pbt_round + 1) * pbt_config_.interval >= max_epochs_[size_t(trial)];
        if (pbt_ && t.status == "failed" && !last_round) {
            t.status = "waiting", t.replace = true;
            say("member %d failed in round %d (%s); a top member replaces it at the round's end", trial,
                ledger_.pbt_round, outcome.reason.c_str());
        } else {
            say("trial %d failed (%s)%s", trial, outcome.reason.c_str(), t.status == "pending" ? "; it will run again" : "");
        }
    } else if (pbt_ && outcome.status == "stopped") {
        t.status = "waiting";
        say("member %d ended round %d: validation Dice %.4f", trial, ledger_.pbt_round, t.dice.empty() ? 0.0 : t.dice.back());
    } else {
        t.status = outcome.status;
        say("trial %d %s after %d epochs, best validation Dice %.4f", trial, outcome.status.c_str(), t.epochs(),
            t.best_dice());
    }
    save();
    end_round_if_due();
}

void Coordinator::set_pbt(const PbtConfig& config, const SearchSpace* space, CheckpointMover mover) {
    pbt_ = true;
    pbt_config_ = config;
    mover_ = std::move(mover);
    space_ = space;
    for (TrialRecord& t : ledger_.trials) {
        if (t.schedule.empty()) t.schedule.push_back(t.params);
        // The job ended under it and --max_failures is spent: replaced like a failed round.
        const bool last_round = (ledger_.pbt_round + 1) * pbt_config_.interval >= max_epochs_[size_t(t.id)];
        if (t.status == "failed" && t.reason == "the job ended while it ran" && !last_round) t.status = "waiting", t.replace = true;
    }
    save();
    end_round_if_due();  // the job ended between a round's last report and its exploit
}

void Coordinator::end_round_if_due() {
    if (!pbt_ || stopping_) return;
    bool waiting = false;
    for (const TrialRecord& t : ledger_.trials) {
        if (t.status == "pending" || t.status == "running") return;
        waiting = waiting || t.status == "waiting";
    }
    if (!waiting) return;
    const int r = ledger_.pbt_round, end = (r + 1) * pbt_config_.interval;
    std::vector<PbtMember> members;
    for (const TrialRecord& t : ledger_.trials) {
        if (t.status != "waiting") continue;
        PbtMember m;
        m.id = t.id;
        m.failed = t.replace;
        m.score = int(t.dice.size()) >= end ? t.dice[size_t(end - 1)] : t.dice.empty() ? 0.0 : t.dice.back();
        members.push_back(m);
    }
    const std::vector<PbtExploit> exploits = pbt_exploit(members, pbt_config_, r);
    // Every donor's hyperparameters as they were in this round, before any member changes.
    std::map<int, TrialParams> donor_params;
    for (const PbtExploit& e : exploits) donor_params[e.donor] = ledger_.trials[size_t(e.donor)].params;
    for (const PbtExploit& e : exploits) {
        TrialRecord& t = ledger_.trials[size_t(e.recipient)];
        PbtTransfer x;
        x.donor = e.donor, x.recipient = e.recipient;
        x.from_group = ledger_.trials[size_t(e.donor)].group, x.to_group = t.group;
        x.from_dir = ledger_.dir + "/trial_" + std::to_string(e.donor);
        x.to_dir = ledger_.dir + "/trial_" + std::to_string(e.recipient);
        const auto t0 = std::chrono::steady_clock::now();
        const PbtMoved moved = mover_(x);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ledger_.exploit_seconds += s;
        ++ledger_.exploits;
        t.params = pbt_explore(*space_, donor_params[e.donor], pbt_config_, r, e.recipient);
        t.lineage.emplace_back(r, e.donor);
        t.replace = false;
        say("round %d: member %d (Dice %.4f%s) copies member %d's checkpoint (%s, %.1f kB in %.4f s, checksum %016llx) -> %s",
            r, e.recipient, t.dice.empty() ? 0.0 : t.dice.back(), t.failures ? ", failed" : "", e.donor,
            moved.how.c_str(), double(moved.bytes) / 1024, s, (unsigned long long)moved.checksum,
            params_label(t.params).c_str());
    }
    for (TrialRecord& t : ledger_.trials) {
        if (t.status != "waiting") continue;
        if (t.replace) {  // nothing to copy from: every member failed
            t.status = "failed";
            t.replace = false;
            continue;
        }
        t.status = "pending";
        t.schedule.resize(size_t(r + 1));
        t.schedule.push_back(t.params);
    }
    ledger_.pbt_round = r + 1;
    say("round %d ended: %zu exploits; exploit steps so far %.4f s of %.1f s (%.3f%%)", r, exploits.size(),
        ledger_.exploit_seconds, clock(), 100.0 * ledger_.exploit_seconds / std::max(1e-9, clock()));
    save();
}

bool Coordinator::search_finished() const {
    for (const TrialRecord& t : ledger_.trials)
        if (!t.finished()) return false;
    return true;
}

}  // namespace unet
