// A parameter server's state and its part of a training step (--sync ps): the buckets it owns
// (Buckets::owner), packed one after the other in shard-sized buffers (parameters, the summed
// gradient, the optimizer's moments), and an inbox of one copy per worker. serve() receives its
// buckets from every worker, sums each one over the workers in worker order (the result does
// not depend on who arrives first), applies the optimizer to it and sends the new parameters
// back, while the other buckets are still in flight. A server builds no model and reads no data.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "unet/core/aligned.h"
#include "unet/nn/optimizer.h"
#include "unet/parallel/buckets.h"
#include "unet/parallel/comm.h"
#include "unet/parallel/gradient_exchange.h"

namespace unet {

class PsShard {
   public:
    // Collective over `comm` (ranks 0..servers-1 are servers; this rank must be one of them).
    // `params`: floats in the whole flat buffer, cut as the workers cut it.
    PsShard(Comm& comm, int servers, int64_t params, int64_t bucket_floats, const OptimizerConfig& optimizer);
    ~PsShard();
    PsShard(const PsShard&) = delete;
    PsShard& operator=(const PsShard&) = delete;

    int64_t shard_size() const { return shard_; }
    int workers() const { return size_ - servers_; }
    Optimizer& optimizer() { return opt_; }

    // Takes this server's buckets of whole-model buffers (the initial parameters, or a resumed
    // checkpoint's parameters and optimizer state, named as Optimizer::state() names them).
    void load(const float* params, const std::map<std::string, const float*>& optimizer_state = {});

    // One step: see the header comment. `lr` is the step's rate. Throws std::runtime_error naming
    // the silent workers and `step` when no bucket arrives for `timeout_s` seconds (0: forever).
    ExchangeTimes serve(int64_t step, float lr, double timeout_s);

    // Collective over the servers: rank 0 receives every server's buckets into whole-model
    // buffers (`params`, the last step's summed gradient `grads` if not null, and each optimizer
    // state buffer in `optimizer_state`, named as Optimizer::state()). Other servers pass null
    // pointers and an empty map.
    void gather_to_root(float* params, float* grads, const std::map<std::string, float*>& optimizer_state);

   private:
    // f(k, b, shard offset): each own bucket b (the k-th) and where it sits in the shard.
    template <class F>
    void for_own_buckets(F f) const;
    int rank_, size_, servers_;
    void* comm_;  // MPI_Comm*
    Buckets buckets_;
    std::vector<int> mine_;           // own buckets, in increasing order
    std::vector<int64_t> at_;         // mine_[k] starts at shard offset at_[k]
    int64_t shard_ = 0;               // floats in the own buckets
    AlignedVector<float> params_, grads_;
    std::vector<float> inbox_;        // workers x shard_ floats
    Optimizer opt_;
};

}  // namespace unet
