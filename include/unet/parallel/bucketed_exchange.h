// The skeleton both MPI exchanges share: the bound buffers cut into buckets, each bucket posted
// (its nonblocking messages started) once backward has made it final, from the top bucket down
// (backward finishes the highest offsets first, and every rank posts in this one order), and each
// push() also testing the open requests, since Open MPI progresses messages only inside MPI calls.
// A subclass says what posting a bucket means (post) and what waiting means (GradientExchange::wait).
#pragma once

#include <cstdint>
#include <memory>

#include "unet/parallel/buckets.h"
#include "unet/parallel/gradient_exchange.h"

namespace unet {

class BucketedExchange : public GradientExchange {
   public:
    ~BucketedExchange() override;
    BucketedExchange(const BucketedExchange&) = delete;
    BucketedExchange& operator=(const BucketedExchange&) = delete;
    void push(int64_t ready_from) final;

   protected:
    // Needs MPI (several ranks): throws std::logic_error naming `what` otherwise.
    BucketedExchange(Comm& comm, int64_t size, int64_t bucket_floats, const char* what);
    // Starts bucket b's messages; their requests go into requests().
    virtual void post(int bucket) = 0;
    // Posts every bucket not posted yet (the start of wait()), and makes the next push() a new step.
    void post_rest();
    struct Requests;  // MPI requests in flight (mpi.h stays in src/parallel)
    Requests& requests() { return *open_; }
    void* comm_;  // MPI_Comm*
    Buckets buckets_;

   private:
    int next_ = 0;  // buckets >= next_ have been posted (they go from the last down)
    std::unique_ptr<Requests> open_;
};

}  // namespace unet
