// The search's bookkeeping, free of MPI: which trial a free group gets next, whether a trial goes
// on after an epoch (the scheduler), what became of it. The ledger is saved after every change,
// so a crash loses at most the report in flight. world rank 0 drives it from messages
// (tuner.cpp); a single process calls it directly.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "unet/tune/ledger.h"
#include "unet/tune/pbt.h"
#include "unet/tune/scheduler.h"

namespace unet {

struct TrialOutcome {
    std::string status;  // completed | stopped | failed | interrupted
    std::string reason;  // for failed
};

class Coordinator {
   public:
    // `max_epochs[t]`: trial t's --epochs (the scheduler's horizon). A ledger loaded from disk is
    // resumed: trials that were running when the job died count one failure and run again (from
    // their checkpoints) if --max_failures allows.
    Coordinator(Ledger ledger, SchedulerConfig scheduler, std::vector<int> max_epochs, int max_failures);
    void set_quiet(bool q) { quiet_ = q; }  // no progress lines on stdout (tests)
    // Searches that learn (--search tpe): a trial the ledger holds without hyperparameters gets
    // them when it is handed out, from draw(ledger, trial) (seeing every result so far), and its
    // max_epochs from epochs_of(params). Without a drawer every trial must have its parameters.
    using TrialDrawer = std::function<TrialParams(const Ledger&, int trial)>;
    void set_drawer(TrialDrawer draw, std::function<int(const TrialParams&)> epochs_of);
    // --scheduler pbt (pbt.h): members stop at each round's end and wait for the others; when
    // the last one of a round has reported, the bottom ones copy a top one's checkpoint (in
    // <ledger dir>/trial_<k>/) and take its perturbed hyperparameters. A member whose round fails
    // (beyond --max_failures) is replaced so too. Call before handing out trials.
    void set_pbt(const PbtConfig& config, const SearchSpace* space);
    static constexpr int kWait = -2;  // next_trial under pbt: nothing now, ask again after a result
    int next_trial(int group);  // -1: nothing left to hand out
    bool report_epoch(int trial, int epoch, double dice);
    void finish_trial(int trial, const TrialOutcome& outcome);
    void stop_handing_out() { stopping_ = true; }
    bool stopping() const { return stopping_; }
    bool search_finished() const;  // every trial completed, stopped or failed
    const Ledger& ledger() const { return ledger_; }

   private:
    double clock() const;
    void end_round_if_due();
    void say(const char* format, ...) const;
    void save();
    Ledger ledger_;
    SchedulerConfig scheduler_;
    std::vector<int> max_epochs_;
    int max_failures_ = 0;
    TrialDrawer draw_;
    std::function<int(const TrialParams&)> epochs_of_;
    bool stopping_ = false, quiet_ = false;
    bool pbt_ = false;
    PbtConfig pbt_config_;
    const SearchSpace* space_ = nullptr;
    std::vector<std::chrono::steady_clock::time_point> started_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    double elapsed_before_ = 0;
};

}  // namespace unet
