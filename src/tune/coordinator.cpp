#include "unet/tune/coordinator.h"

#include <cstdarg>
#include <cstdio>
#include <stdexcept>

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

int Coordinator::next_trial(int group) {
    if (stopping_) return -1;
    for (TrialRecord& t : ledger_.trials) {
        if (t.status != "pending") continue;
        if (t.params.empty()) {
            if (!draw_) throw std::logic_error("Coordinator: trial " + std::to_string(t.id) + " has no hyperparameters");
            // Drawn from the ledger as it stands now, before this trial counts as running.
            t.params = draw_(ledger_, t.id);
            if (epochs_of_) max_epochs_[size_t(t.id)] = epochs_of_(t.params);
        }
        t.status = "running";
        t.group = group;
        started_[size_t(t.id)] = std::chrono::steady_clock::now();
        say("trial %d -> group %d%s: %s", t.id, group, t.failures ? " (retry)" : t.epochs() ? " (resumed)" : "",
            params_label(t.params).c_str());
        save();
        return t.id;
    }
    return -1;
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
        say("trial %d failed (%s)%s", trial, outcome.reason.c_str(), t.status == "pending" ? "; it will run again" : "");
    } else {
        t.status = outcome.status;
        say("trial %d %s after %d epochs, best validation Dice %.4f", trial, outcome.status.c_str(), t.epochs(),
            t.best_dice());
    }
    save();
}

bool Coordinator::search_finished() const {
    for (const TrialRecord& t : ledger_.trials)
        if (!t.finished()) return false;
    return true;
}

}  // namespace unet
