// --sync allreduce, overlapped with backward: each bucket's MPI_Iallreduce starts the moment
// backward reports it final, in the same order on every rank (nonblocking collectives must be
// issued in one order everywhere, and backward's order is fixed). wait() waits for the sums, then
// applies the same optimizer step on every rank.
#pragma once

#include <cstdint>

#include "unet/parallel/bucketed_exchange.h"

namespace unet {

class AllreduceExchange : public BucketedExchange {
   public:
    // Collective over `comm` (MPI, several ranks). `timeout_s`: how long wait() waits (0: forever).
    AllreduceExchange(Comm& comm, Optimizer& opt, float* params, float* grads, int64_t size, int64_t bucket_floats,
                      double timeout_s);
    // Throws std::runtime_error naming `step` when the sums take longer than the timeout (a rank
    // stalled in backward would otherwise hang the job).
    ExchangeTimes wait(int64_t step, float lr) override;

   private:
    void post(int bucket) override;
    Optimizer& opt_;
    float* params_;
    float* grads_;
    double timeout_s_;
};

}  // namespace unet
