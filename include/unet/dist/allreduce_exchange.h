// The all-reduce half of a training step (--sync allreduce), overlapped with backward: the flat
// gradient buffer is cut into buckets of about --bucket_mb, and each bucket's MPI_Iallreduce
// starts the moment UNet::backward reports it final, in the same order on every rank (nonblocking
// collectives must be issued in one order everywhere, and backward's order is fixed). Each report
// also tests the open requests, since Open MPI progresses messages only inside MPI calls. Every
// rank then applies the same optimizer step to the summed gradient.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "unet/dist/comm.h"

namespace unet {

class AllreduceExchange {
   public:
    AllreduceExchange(Comm& comm, int64_t params, int64_t bucket_floats);
    ~AllreduceExchange();
    AllreduceExchange(const AllreduceExchange&) = delete;
    AllreduceExchange& operator=(const AllreduceExchange&) = delete;

    // From UNet::backward's GradientsReady: starts every bucket wholly at or above `ready_from`.
    void ready(float* grads, int64_t ready_from);
    // Starts what is left and waits until `grads` holds the sum over the ranks; returns the
    // seconds spent waiting. Throws std::runtime_error naming `step` when that takes longer than
    // `timeout_s` (0: wait forever): a rank stalled in backward would otherwise hang the job.
    double finish(float* grads, int64_t step, double timeout_s);

   private:
    struct Requests;
    void start(int bucket, float* grads);
    void* comm_;  // MPI_Comm*
    std::vector<int64_t> begin_, end_;
    int next_ = 0;  // buckets >= next_ have started
    std::unique_ptr<Requests> open_;
};

// [begin, end) ranges of about bucket_floats floats covering [0, params), at most `max_buckets`.
void cut_buckets(int64_t params, int64_t bucket_floats, int64_t max_buckets, std::vector<int64_t>& begin,
                 std::vector<int64_t>& end);

}  // namespace unet
