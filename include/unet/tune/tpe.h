// `--search tpe`: the tree-structured Parzen estimator (Bergstra et al. 2011), with Optuna's
// default settings, drawing each trial's hyperparameters from the trials that came before it.
//
// Trials 0..startup_trials-1 are the random search's trials of the same seed (random_trials).
// Every later trial is drawn when a group asks for it: the finished trials are split into the
// good ones (the best gamma(n) = min(ceil(0.1 n), 25) by objective, n counting the pending ones
// too) and the rest; each hyperparameter, independently of the others, gets a Parzen estimator
// l(x) over the good trials' values and g(x) over the rest, each a mixture of one kernel per
// trial plus a prior kernel (prior weight 1); 24 candidates are drawn from l and the one with the
// largest l(x) / g(x) wins.
//   choice      categorical kernels: the trial's value gets 1 + 1/K of mass, every value 1/K (K
//               kernels), then normalised; the prior kernel is uniform.
//   uniform     truncated normals on [lo, hi]; a kernel's width is the larger gap to its
//               neighbouring values (the prior's centre and the bounds count as neighbours),
//               clipped to [(hi - lo) / min(100, K + 1), hi - lo]; the prior is centred, width hi - lo.
//   loguniform  the same in log space.
//   range       the same on [first - step/2, last + step/2], each kernel's mass integrated over a
//               value's cell; candidates are rounded to the grid.
// Mixture weights are 1 for the newest 25 trials of a group and ramp down linearly for older
// ones (Optuna's default_weights).
//
// Objective: a trial's best validation Dice, larger is better; a trial stopped by ASHA or the
// median rule counts with the best Dice it reached. Failed trials are left out. Trials handed out
// but not finished (several groups ask at once) count as the worst finished trial (constant
// liar), so they are in the bad group and parallel asks spread out instead of repeating one point.
//
// Deterministic: trial k's random stream is seeded by (--seed, k) alone, so the same seed and the
// same results at the moment of each ask give the same trials on any machine, and a resumed search
// (the ledger holds every drawn trial's hyperparameters and every report) draws as the
// uninterrupted one would have.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unet/tune/ledger.h"
#include "unet/tune/search_space.h"

namespace unet {

struct TpeConfig {
    int startup_trials = 10;   // random trials before the estimator is used
    int candidates = 24;       // draws from l(x) per hyperparameter (Optuna's n_ei_candidates)
    double prior_weight = 1.0;
    uint64_t seed = 42;
};

// One trial as TPE sees it.
struct TpeTrial {
    int id = 0;
    TrialParams params;
    bool finished = false;  // true: `value` is its objective; false: still to report (a liar)
    double value = 0;
};

// The ledger's trials that have hyperparameters, as TPE sees them: completed and stopped ones
// with their best Dice (stopped ones with at least one report), running and pending ones as
// unfinished; failed ones and ones never drawn are left out.
std::vector<TpeTrial> tpe_history(const Ledger& ledger);

// Trial `id`'s hyperparameters: random_trials(space, startup_trials, seed)[id] for the start-up
// trials, otherwise drawn by the estimator from `history` (which must not contain `id`).
// Values are written as random search writes them and lie inside the space's bounds.
TrialParams tpe_suggest(const SearchSpace& space, const TpeConfig& config, const std::vector<TpeTrial>& history,
                        int id);

// Optuna's gamma: how many of n trials form the good group.
int tpe_good_count(int n);

// The densities the estimator uses, exposed for tests: the log density at `x` of one
// hyperparameter's Parzen estimator built from `values` (as written in a trial's params) with
// equal weights and the prior. For range, the probability of the grid value x.
double tpe_log_density(const Hyperparameter& h, const std::vector<std::string>& values, const std::string& x,
                       double prior_weight = 1.0);

}  // namespace unet
