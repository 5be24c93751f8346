// `--scheduler pbt`: population-based training (Jaderberg et al. 2017), in synchronous rounds.
//
// The --trials members (random search's trials of --seed: the initial population) train in rounds
// of --perturbation_interval epochs. A member ends its round by stopping early (its checkpoint,
// weights, optimizer state and step, is written by the trainer then) and waits for the others. When
// every member has ended round r, the coordinator ranks them by their validation Dice at the
// round's last epoch and
//   exploit: each member of the bottom quantile (--pbt_quantile of the population, rounded up, at
//            most half of it; members whose round failed always count as bottom) copies the
//            checkpoint of a member of the top quantile, drawn at random: checkpoint_latest.h5 and
//            checkpoint_best.h5 into its own trial directory (under mpirun sent by the donor's
//            group leader to the recipient's, pbt_transfer.h; in one process a file copy);
//   explore: and takes that donor's hyperparameters, perturbed: a uniform, loguniform or range
//            value is resampled from the space with probability 0.25, else multiplied by 0.8 or 1.2
//            (even odds) and clipped to the space's bounds (range: rounded to its grid, one step
//            at least); a choice value is resampled with probability 0.25.
// Then every member trains its next round with `--resume auto` from the checkpoint in its directory.
// Every draw comes from a generator seeded by (--seed, round), so a search is deterministic.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "unet/tune/search_space.h"

namespace unet {

struct PbtConfig {
    int interval = 2;        // epochs per round
    double quantile = 0.25;  // bottom / top fraction
    uint64_t seed = 42;
};

// One member as the round boundary sees it.
struct PbtMember {
    int id = 0;
    double score = 0;     // validation Dice at the round's last epoch
    bool failed = false;  // its round failed: it is replaced whatever its score
};

struct PbtExploit {
    int recipient = 0, donor = 0;
};

// How many members form the bottom and the top quantile of n.
int pbt_quantile_count(int n, double quantile);

// Who copies whom at the end of `round`: recipients in increasing id order. Ties in score rank
// the lower id higher. Empty when no member can give (every one failed).
std::vector<PbtExploit> pbt_exploit(const std::vector<PbtMember>& members, const PbtConfig& c, int round);

// The donor's hyperparameters perturbed for `recipient` at the end of `round`.
TrialParams pbt_explore(const SearchSpace& space, const TrialParams& donor, const PbtConfig& c, int round,
                        int recipient);

// Copies the donor's checkpoint_latest.h5 (and checkpoint_best.h5 where there is one) from
// `from_dir` into `to_dir`, replacing the recipient's (written to a temporary name, then renamed).
// Throws std::runtime_error naming the file. Returns the bytes copied.
uint64_t pbt_copy_checkpoint(const std::string& from_dir, const std::string& to_dir);

// UsageError for a search pbt cannot run: a grid or tpe search, a searched setting that changes
// the model's layout or the optimizer (filters, depth, norm, optimizer, ...: a member could not
// resume from another's checkpoint), a space without a uniform,
// loguniform or range hyperparameter, a --perturbation_interval that leaves no round boundary
// before `epochs`.
void pbt_check(const SearchSpace& space, const std::string& search, int interval, double quantile, int epochs);

}  // namespace unet
