// How a worker's gradients become the next step's parameters, in the push / wait vocabulary of a
// parameter server (dmlc/ps-lite's kv_app.h): an exchange is bound once to a rank's flat gradient
// and parameter buffers; during backward the trainer says "the gradients from this offset up are
// final, send them" (push), and after backward "wait until my parameters are back" (wait).
// train_step talks to this interface only, whatever the kind:
//   LocalExchange        one process: wait() applies the optimizer to the whole buffer
//   AllreduceExchange    --sync allreduce: each bucket MPI_Iallreduce'd as it becomes final, then
//                        every rank applies the same optimizer step (allreduce_exchange.h)
//   PsWorkerExchange     --sync ps: each bucket sent to its server, whose reply (the bucket's new
//                        parameters) is received into the bound buffer (ps_exchange.h; the server
//                        side is PsShard)
// push() also drives MPI progress (Open MPI has no progress thread), so it is called between
// layers even when there is nothing new to send.
#pragma once

#include <cstdint>
#include <memory>

#include "unet/nn/optimizer.h"
#include "unet/parallel/comm.h"

namespace unet {

struct ExchangeTimes {
    double wait_s = 0;    // blocked on messages
    double update_s = 0;  // summing and the optimizer
};

class GradientExchange {
   public:
    virtual ~GradientExchange() = default;
    // Every gradient at flat offset >= ready_from is final for this step, and its parameters are
    // no longer read by it (UNet::GradientsReady). Offsets only go down within a step.
    virtual void push(int64_t ready_from) = 0;
    // Pushes what is left and returns once the bound parameters hold the next step's values. `lr`
    // is the step's learning rate for exchanges that apply the optimizer here (servers use their
    // own schedule). Throws std::runtime_error naming `step` when other ranks stay silent for
    // longer than the exchange's timeout.
    virtual ExchangeTimes wait(int64_t step, float lr) = 0;
};

// One process: the gradient is already the whole batch's; wait() is the optimizer step.
class LocalExchange : public GradientExchange {
   public:
    LocalExchange(Optimizer& opt, float* params, const float* grads) : opt_(opt), params_(params), grads_(grads) {}
    void push(int64_t) override {}
    ExchangeTimes wait(int64_t step, float lr) override;

   private:
    Optimizer& opt_;
    float* params_;
    const float* grads_;
};

struct ExchangeConfig {
    enum class Kind { local, allreduce, parameter_server };
    Kind kind = Kind::local;
    int servers = 0;            // parameter_server: ranks 0..servers-1 serve, the others work
    int64_t bucket_floats = 0;  // gradients travel in buckets of this many floats
    double timeout_s = 0;       // how long a collective waits for a silent rank (0: forever)
};

// The exchange of a worker rank for `config`, bound to `params` and `grads` (`size` floats each,
// alive as long as the exchange). Collective over `comm` for the MPI kinds; `opt` is the rank's
// optimizer (unused by a parameter-server worker, whose servers own the optimizer state).
std::unique_ptr<GradientExchange> make_gradient_exchange(Comm& comm, const ExchangeConfig& config, Optimizer& opt,
                                                         float* params, float* grads, int64_t size);

}  // namespace unet
