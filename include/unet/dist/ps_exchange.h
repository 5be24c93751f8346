// The parameter-server half of a training step, bucket by bucket, overlapped with backward.
//
// The flat gradient buffer is cut into buckets of about --bucket_mb. Each bucket belongs to one
// server (round robin over ranks 0..servers-1; --num_ps > 1 shards the parameters and the
// optimizer state). A worker sends a bucket the moment backward reports it final
// (UNet::GradientsReady), and at once posts the receive of that bucket's new parameters, which
// backward no longer reads. Open MPI has no progress thread, so each report also tests the open
// requests. A server sums a bucket over the workers in worker order (the result does not depend
// on who arrives first), applies the optimizer to that range and sends the parameters back, while
// the other buckets are still in flight.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "unet/dist/comm.h"
#include "unet/nn/optimizer.h"

namespace unet {

struct ExchangeTimes {
    double wait_s = 0;    // blocked on messages
    double update_s = 0;  // summing and the optimizer (servers)
};

class PsExchange {
   public:
    // Collective over `comm`: every rank builds the same plan. servers >= 1, < comm.size().
    PsExchange(Comm& comm, int servers, int64_t params, int64_t bucket_floats);
    ~PsExchange();
    PsExchange(const PsExchange&) = delete;
    PsExchange& operator=(const PsExchange&) = delete;

    bool is_server() const { return rank_ < servers_; }
    int servers() const { return servers_; }
    int workers() const { return size_ - servers_; }
    int buckets() const { return int(begin_.size()); }
    int owner(int bucket) const { return bucket % servers_; }

    // Worker: the first call of a step posts nothing until buckets are final; call from
    // UNet::backward's GradientsReady. Sends every bucket wholly at or above `ready_from`.
    void worker_ready(const float* grads, float* params, int64_t ready_from);
    // Worker: sends what is left and waits until every bucket's new parameters are in `params`.
    ExchangeTimes worker_finish(const float* grads, float* params);

    // Server: one step. Receives its buckets from every worker, sums them in worker order into
    // `grads`, updates `params` there with `opt` at `lr` (opt.begin_step() is called once), and
    // sends them back. Throws std::runtime_error naming the silent workers and `step` when no
    // bucket arrives for `timeout_s` seconds (0: wait forever).
    ExchangeTimes serve(Optimizer& opt, float lr, float* grads, float* params, int64_t step, double timeout_s);

    // Collective: rank 0 receives the other servers' buckets of `params` and of every optimizer
    // state buffer, so it holds the whole model (before a checkpoint or a picture); with `grads`,
    // also of the last step's summed gradient (TensorBoard's gradient histograms).
    void gather_to_root(Optimizer& opt, float* params, float* grads = nullptr);

   private:
    struct Requests;  // MPI requests in flight (mpi.h stays in the .cpp)
    void post(int bucket, const float* grads, float* params);
    int rank_, size_, servers_;
    void* comm_;  // MPI_Comm*
    std::vector<int64_t> begin_, end_;
    int next_ = 0;  // worker: buckets >= next_ have been posted (they go from the last down)
    std::unique_ptr<Requests> open_;
    int64_t shard_ = 0;              // server: floats in its own buckets
    std::vector<int64_t> inbox_at_;  // server: where its k-th own bucket sits in a worker's inbox part
    std::vector<float> inbox_;       // server: workers x shard_ floats
};

}  // namespace unet
