// --sync ps, the worker's side, overlapped with backward: a bucket leaves for its server (Buckets::
// owner) the moment backward reports it final, and at once the receive of that bucket's new
// parameters is posted into the bound parameter buffer, which backward no longer reads there.
// wait() returns when every bucket's new parameters are in. The server's side is PsShard.
#pragma once

#include <cstdint>

#include "unet/parallel/bucketed_exchange.h"

namespace unet {

// Gradients travel on tags kGradTag + bucket, parameters on kParamTag + bucket.
constexpr int kGradTag = 1000;
constexpr int kParamTag = kGradTag + int(kMaxBuckets);

class PsWorkerExchange : public BucketedExchange {
   public:
    // Collective over `comm`: ranks 0..servers-1 are servers (1 <= servers < comm.size()).
    PsWorkerExchange(Comm& comm, int servers, float* params, const float* grads, int64_t size, int64_t bucket_floats);
    ExchangeTimes wait(int64_t step, float lr) override;

   private:
    void post(int bucket) override;
    int servers_;
    float* params_;
    const float* grads_;
};

}  // namespace unet
