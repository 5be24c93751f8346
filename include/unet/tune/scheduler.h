// Early stopping of trials from their per-epoch validation Dice. Decisions are a function of
// every trial's history of reports (history[e] = Dice after epoch e+1), so a resumed search
// decides exactly as the uninterrupted one would from the same reports, with no state to restore.
//
// fifo:   every trial runs all its epochs.
// asha:   asynchronous successive halving (Li et al. 2018, one bracket). Rungs at grace_period *
//         reduction_factor^k epochs, below max_epochs. A trial reaching a rung continues only if
//         its Dice there is among the best max(1, floor(n / reduction_factor)) of the n trials that
//         have reached that rung so far (itself included); otherwise it stops and frees its group.
//         Decisions are taken as reports arrive: early trials are judged against fewer peers.
// median: the median stopping rule (Golovin et al. 2017): after grace_period epochs, a trial stops
//         when its best Dice so far is below the median, over the other trials with at least as
//         many epochs (at least 3 of them), of their mean Dice over the same first epochs.
// pbt:    population-based training (pbt.h): a trial (member) stops at the end of each round of
//         perturbation_interval epochs, before its last epoch, and the coordinator continues it
//         after the round's exploit and explore.
#pragma once

#include <string>
#include <vector>

namespace unet {

struct SchedulerConfig {
    std::string kind = "fifo";  // fifo | asha | median | pbt
    int grace_period = 1;       // epochs before any trial can be stopped
    int reduction_factor = 3;   // asha: keep the best 1/reduction_factor at each rung
    int min_peers = 3;          // median: trials needed to compare against
    int perturbation_interval = 2;  // pbt: epochs per round
};

// histories[t] = trial t's Dice after each epoch so far (histories[trial] already holds the
// report being judged, as its last value). Returns true to continue, false to stop.
bool should_continue(const SchedulerConfig& c, const std::vector<std::vector<double>>& histories, int trial,
                     int max_epochs);

// ASHA's rungs (epoch counts) for a run of max_epochs.
std::vector<int> asha_rungs(const SchedulerConfig& c, int max_epochs);

void validate(const SchedulerConfig& c);  // UsageError naming the flag

}  // namespace unet
