// `unet_train --tune FILE`: a hyperparameter search. Under mpirun, world rank 0 coordinates (it
// trains nothing) and ranks 1..N-1 form groups of --group_size consecutive ranks; each group
// trains one trial at a time through run_training over its own communicator (one rank alone, or
// a parameter server and workers), in <logdir>/tune/trial_<k>/. The group leader reports the
// validation Dice after every epoch and hears whether to go on (fifo / asha / median); a stopped,
// finished or failed trial frees its group at once. Without mpirun one process runs the trials
// one after another with the same bookkeeping.
//
// Failures: an error every rank of the trial's group sees alike (a diverging loss, settings the
// model rejects) or any error in a one-rank group marks the trial failed with its reason
// (--max_failures retries it, from its checkpoint) and the search goes on. An error only one rank
// of a larger group sees cannot be recovered without the others hanging in a collective: it ends
// the job as any rank failure does; the ledger survives and --resume auto continues, counting
// that trial's failure. SIGTERM / SIGINT: running trials checkpoint and stop, the search stops,
// and --resume auto continues it.
#pragma once

#include <string>
#include <vector>

#include "unet/train/train_options.h"
#include "unet/tune/search_space.h"

namespace unet {

struct SearchPlan {
    SearchSpace space;
    // trial k's hyperparameters; tpe: empty for the trials after the start-up ones, drawn when a
    // group asks (the ledger then holds them)
    std::vector<TrialParams> trials;
    std::vector<TrainOptions> options;  // trial k's resolved options (logdir, resume auto); tpe: for
                                        // the trials with hyperparameters only
    std::string fingerprint;            // what a resumed search must match
    int argc = 0;
    char** argv = nullptr;
    std::string logdir;
    // Trial k's options from its hyperparameters (the precomputed ones where there are).
    // Throws UsageError (not naming the trial) for settings the parser rejects.
    TrainOptions trial_options(int k, const TrialParams& params) const;
};

// Every trial's options: its hyperparameters win over the command line, which wins over the
// search file's [fixed] section. A trial whose settings are invalid stops the search before any
// training with a UsageError naming the trial. tpe: the start-up trials are checked so, and a
// trial at every choice value and at both ends of every other hyperparameter's range; a drawn
// trial the parser still rejects (settings that only clash in combination) fails with the reason.
SearchPlan plan_search(int argc, char** argv, const TrainOptions& o);

// Runs the search on every rank of Comm::world(); returns the exit code.
int run_tuning(int argc, char** argv, const TrainOptions& o);

}  // namespace unet
