// The one control message of a training step: every rank of the run sends a few numbers (its
// share of the batch's loss and Dice sums, the seconds it spent per activity, whether it saw a
// stop signal or wants a checkpoint) and every rank gets back the totals, so all take the same
// decisions at the same step. Rank 0 collects the messages, waiting at most --step_timeout for
// each, adds them in rank order (repeatable, whatever the arrival order), and broadcasts the
// totals. The message is also the step's heartbeat: a rank that stays silent stops the job with
// one line naming it and the step.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "unet/parallel/comm.h"

namespace unet {

struct StepControl {
    static constexpr int kSums = 32;
    std::array<double, kSums> sums{};  // added over the ranks (their meaning is the trainer's)
    int stop = 0;                      // maxima over the ranks: a stop signal's number,
    int checkpoint = 0;                //   a checkpoint wanted (e.g. its wall-clock interval came due)
    void merge(const StepControl& other);
};

class ControlChannel {
   public:
    // `comm`: the run's ranks; ranks >= first_worker are workers (they are named "worker rank"
    // when silent, the others "server rank"). timeout_s 0: wait forever.
    ControlChannel(Comm& comm, double timeout_s, int first_worker);
    // Collective over comm: replaces `msg` by the totals over every rank. Throws
    // std::runtime_error naming the ranks that sent nothing for `step` within the timeout, or a
    // rank that is at another step.
    void exchange(int64_t step, StepControl& msg);
    // Collective over comm: every rank says it has got to `what` (e.g. "the validation after
    // epoch 3") before a blocking collective there. Throws on the root std::runtime_error naming
    // the ranks it heard nothing from (neither their arrival nor a heartbeat) for the timeout: a
    // worker cut off or stalled during validation ends the job, as in a step, instead of leaving
    // it in MPI_Allreduce. A validation may take far longer than a step; its workers say they are
    // alive while it runs.
    void arrive(const std::string& what);
    // A rank other than the root, at work toward the next arrive() (a validation batch or window
    // done): tells the root it is alive, at most every timeout/4 seconds (no message otherwise).
    void heartbeat();

   private:
    Comm& comm_;
    double timeout_s_;
    int first_worker_;
    int heartbeats_sent_ = 0;    // since the last arrive(): the root receives exactly these
    double last_heartbeat_ = -1;  // MPI_Wtime of the last one sent
};

}  // namespace unet
