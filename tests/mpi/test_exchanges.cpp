// Each gradient exchange over several MPI ranks against the local one (run under mpirun by
// tests/e2e/mpi_unit_tests.sh, with 2, 3 and 4 ranks): a few steps of a fake backward, whose
// gradients are small multiples of 1/4 (so their sums are exact in any order), pushed bucket by
// bucket from the top down, must leave every worker's parameters, and a parameter server's gathered
// parameters and optimizer state, bit-identical to one process applying the optimizer to the sum
// of every worker's gradient. Also the step control message's totals and flags.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "unet/nn/optimizer.h"
#include "unet/parallel/allreduce_exchange.h"
#include "unet/parallel/comm.h"
#include "unet/parallel/gradient_exchange.h"
#include "unet/parallel/ps_exchange.h"
#include "unet/parallel/ps_shard.h"
#include "unet/parallel/step_control.h"

using namespace unet;

namespace {

constexpr int64_t kParams = 2053;  // not a multiple of any bucket size below
constexpr int kSteps = 3;

float gradient(int worker, int step, int64_t i) { return 0.25f * float((i * 7 + worker * 3 + step * 5) % 11 - 5); }
float initial(int64_t i) { return 0.01f * float(i % 97) - 0.3f; }

// One process: the sum of the workers' gradients (in worker order), then the optimizer.
void local_reference(int workers, std::vector<float>& params, Optimizer& opt) {
    params.resize(static_cast<size_t>(kParams));
    for (int64_t i = 0; i < kParams; ++i) params[size_t(i)] = initial(i);
    std::vector<float> grads(static_cast<size_t>(kParams));
    LocalExchange local(opt, params.data(), grads.data());
    for (int step = 0; step < kSteps; ++step) {
        for (int64_t i = 0; i < kParams; ++i) {
            float g = 0;
            for (int w = 0; w < workers; ++w) g += gradient(w, step, i);
            grads[size_t(i)] = g;
        }
        local.push(0);
        local.wait(step, 0.01f);
    }
}

// A worker's steps: a fake backward that makes the gradients final from the top down.
void run_worker(GradientExchange& x, int worker, std::vector<float>& params, std::vector<float>& grads) {
    for (int step = 0; step < kSteps; ++step) {
        for (int64_t top = kParams; top > 0;) {
            const int64_t from = std::max<int64_t>(0, top - 300);
            for (int64_t i = from; i < top; ++i) grads[size_t(i)] = gradient(worker, step, i);
            x.push(from);
            top = from;
        }
        x.wait(step, 0.01f);
    }
    (void)params;
}

}  // namespace

TEST(Exchanges, AllreduceEqualsLocal) {
    Comm& comm = Comm::world();
    for (int64_t bucket : {64, 1000, 100000}) {
        OptimizerConfig oc;
        Optimizer opt(oc, kParams), ref_opt(oc, kParams);
        std::vector<float> params(static_cast<size_t>(kParams)), grads(static_cast<size_t>(kParams)), ref;
        for (int64_t i = 0; i < kParams; ++i) params[size_t(i)] = initial(i);
        AllreduceExchange x(comm, opt, params.data(), grads.data(), kParams, bucket, 60);
        run_worker(x, comm.rank(), params, grads);
        local_reference(comm.size(), ref, ref_opt);
        int64_t first_diff = -1;
        for (int64_t i = 0; i < kParams && first_diff < 0; ++i)
            if (params[size_t(i)] != ref[size_t(i)]) first_diff = i;
        EXPECT_EQ(first_diff, -1) << "bucket " << bucket << ": " << params[size_t(std::max<int64_t>(0, first_diff))]
                                  << " vs " << ref[size_t(std::max<int64_t>(0, first_diff))];
    }
}

TEST(Exchanges, ParameterServerEqualsLocal) {
    Comm& comm = Comm::world();
    for (int servers = 1; servers < comm.size() && servers <= 2; ++servers) {
        for (int64_t bucket : {64, 1000, 100000}) {
            OptimizerConfig oc;
            const int workers = comm.size() - servers;
            Optimizer ref_opt(oc, kParams);
            std::vector<float> ref;
            local_reference(workers, ref, ref_opt);
            std::vector<float> params(static_cast<size_t>(kParams)), grads(static_cast<size_t>(kParams));
            for (int64_t i = 0; i < kParams; ++i) params[size_t(i)] = initial(i);
            if (comm.rank() >= servers) {
                PsWorkerExchange x(comm, servers, params.data(), grads.data(), kParams, bucket);
                run_worker(x, comm.rank() - servers, params, grads);
                EXPECT_EQ(params, ref) << servers << " servers, bucket " << bucket;
                continue;
            }
            PsShard shard(comm, servers, kParams, bucket, oc);
            shard.load(params.data());
            for (int step = 0; step < kSteps; ++step) shard.serve(step, 0.01f, 60);
            // Rank 0 gathers the whole model: the parameters and moments of one process.
            Optimizer whole(oc, kParams);
            std::vector<float> gathered(static_cast<size_t>(kParams), -1.f);
            std::map<std::string, float*> state;
            for (auto& [name, buf] : whole.state()) state[name] = buf->data();
            if (comm.is_root()) shard.gather_to_root(gathered.data(), grads.data(), state);
            else shard.gather_to_root(nullptr, nullptr, {});
            if (!comm.is_root()) continue;
            EXPECT_EQ(gathered, ref) << servers << " servers, bucket " << bucket;
            auto a = whole.state(), b = ref_opt.state();
            for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(*a[k].second == *b[k].second) << a[k].first;
        }
        comm.barrier();
    }
}

TEST(StepControl, TotalsAndFlagsReachEveryRank) {
    Comm& comm = Comm::world();
    ControlChannel channel(comm, 60, 1);
    for (int step = 0; step < 3; ++step) {
        StepControl m;
        m.sums[0] = 0.5 * (comm.rank() + 1);
        m.sums[StepControl::kSums - 1] = 1;
        m.stop = comm.rank() == comm.size() - 1 ? 15 : 0;
        m.checkpoint = comm.rank() == 0 && step == 1;
        channel.exchange(step, m);
        EXPECT_EQ(m.sums[0], 0.25 * comm.size() * (comm.size() + 1));
        EXPECT_EQ(m.sums[StepControl::kSums - 1], comm.size());
        EXPECT_EQ(m.stop, 15);
        EXPECT_EQ(m.checkpoint, step == 1 ? 1 : 0);
    }
}
