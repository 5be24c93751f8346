// The search's bookkeeping, free of MPI: which trial a free group gets next, whether a trial goes
// on after an epoch (the scheduler), what became of it. The ledger is saved after every change,
// so a crash loses at most the report in flight. world rank 0 drives it from messages
// (tuner.cpp); a single process calls it directly.
#pragma once

#include <chrono>
#include <cstdint>
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

// One exploit's move of a checkpoint: from the donor's trial directory (as the group that trained
// the donor in the round that ended holds it) to the recipient's (as the group that trained the
// recipient holds it). Groups are numbered as next_trial's; -1: the member has not run in a group.
struct PbtTransfer {
    int donor = 0, recipient = 0;
    int from_group = -1, to_group = -1;
    std::string from_dir, to_dir;
};
struct PbtMoved {
    uint64_t bytes = 0;
    uint64_t checksum = 0;  // pbt_file_checksum of the recipient's checkpoint_latest.h5 afterwards
    std::string how;        // for the log line: "file copy", "over MPI from group 1 to group 0", ...
};
using CheckpointMover = std::function<PbtMoved(const PbtTransfer&)>;
// The mover of one process: a file copy between its own trial directories (pbt_copy_checkpoint).
PbtMoved pbt_move_by_file_copy(const PbtTransfer& t);

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
    // `mover` moves each exploit's checkpoint (default: pbt_move_by_file_copy); under mpirun the
    // tuner's sends it over MPI between the group leaders (tuner.cpp). Under pbt a free group
    // gets a member it trained before when there is one, so a member's checkpoint stays where
    // its directory is (a group's own host) as long as the population allows.
    void set_pbt(const PbtConfig& config, const SearchSpace* space, CheckpointMover mover = pbt_move_by_file_copy);
    static constexpr int kWait = -2;  // next_trial under pbt: nothing now, ask again after a result
    int next_trial(int group, const std::string& host = "");  // -1: nothing left to hand out; host: the group leader's
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
    CheckpointMover mover_;
    const SearchSpace* space_ = nullptr;
    std::vector<std::chrono::steady_clock::time_point> started_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    double elapsed_before_ = 0;
};

}  // namespace unet
