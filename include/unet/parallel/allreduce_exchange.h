// --sync allreduce, overlapped with backward: each bucket's MPI_Iallreduce starts the moment
// backward reports it final, in the same order on every rank (nonblocking collectives must be
// issued in one order everywhere, and backward's order is fixed). wait() waits for the sums, then
// applies the same optimizer step on every rank.
#pragma once

#include <cstdint>
#include <memory>

#include "unet/parallel/buckets.h"
#include "unet/parallel/gradient_exchange.h"

namespace unet {

class AllreduceExchange : public GradientExchange {
   public:
    // Collective over `comm` (MPI, several ranks). `timeout_s`: how long wait() waits (0: forever).
    AllreduceExchange(Comm& comm, Optimizer& opt, float* params, float* grads, int64_t size, int64_t bucket_floats,
                      double timeout_s);
    ~AllreduceExchange() override;
    AllreduceExchange(const AllreduceExchange&) = delete;
    AllreduceExchange& operator=(const AllreduceExchange&) = delete;

    void push(int64_t ready_from) override;
    // Throws std::runtime_error naming `step` when the sums take longer than the timeout (a rank
    // stalled in backward would otherwise hang the job).
    ExchangeTimes wait(int64_t step, float lr) override;

   private:
    struct Requests;
    void start(int bucket);
    void* comm_;  // MPI_Comm*
    Optimizer& opt_;
    float* params_;
    float* grads_;
    double timeout_s_;
    Buckets buckets_;
    int next_ = 0;  // buckets >= next_ have started
    std::unique_ptr<Requests> open_;
};

}  // namespace unet
