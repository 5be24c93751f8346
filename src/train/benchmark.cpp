// --benchmark: the training step timed on random data, distributed as training would be.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "unet/core/rng.h"
#include "unet/data/loader.h"
#include "unet/train/flags.h"
#include "unet/train/rank_role.h"
#include "unet/train/trainer.h"

namespace unet {

double peak_rss_mib() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

MemoryEstimateParts model_memory(UNet& model, const Dims& spatial, int64_t batch, int state_copies, bool under_mpi) {
    const MemoryEstimate e = model.estimate_memory(batch, spatial, state_copies);
    MemoryEstimateParts m;
    m.batch = batch;
    m.network = e.activation_bytes;
    m.scratchpad = e.scratchpad_bytes;
    m.parameters = e.parameter_bytes;
    m.optimizer = e.optimizer_bytes;
    m.process = process_base_bytes(under_mpi);
    return m;
}

void print_model_summary(UNet& model, const TrainOptions& o, const MemoryEstimateParts& memory) {
    std::fprintf(stderr,
                 "model: %dD UNet, filters %lld..%lld, depth %d, %s up-sampling, norm %s, %d Winograd convolutions: "
                 "%lld parameters\n%s\n",
                 o.model.dims, (long long)o.model.base_filters, (long long)o.model.filters(o.model.depth), o.model.depth,
                 upsampling_name(o.model.upsampling), norm_name(o.model.norm),
                 model.winograd_layers(memory.batch, o.input_size), (long long)model.store().parameter_count(),
                 memory.describe().c_str());
}

std::string BenchmarkResult::json(const TrainOptions& o) const {
    std::ostringstream os;
    os.precision(4);
    os << "{\"program\":\"unet_train\"";
    for (const FlagValue& v : flag_values(o, kBenchmark)) {
        os << ",\"" << v.name << "\":";
        if (v.kind == FlagKind::text) os << "\"" << v.value << "\"";
        else if (v.kind == FlagKind::list) os << "[" << v.value << "]";
        else os << v.value;
    }
    os << ",\"sync\":\"" << (ranks > 1 ? o.sync : "none") << "\",\"ranks\":" << ranks << ",\"num_ps\":"
       << (ranks > 1 && o.sync == "ps" ? o.num_ps : 0) << ",\"threads\":" << threads << std::fixed
       << ",\"step_ms\":" << step_ms << ",\"samples_per_s\":" << samples_per_s
       << ",\"gflop_per_sample\":" << gflop_per_sample << ",\"gflops\":" << gflops << ",\"peak_rss_mib\":" << peak_rss_mib
       << ",\"comm_fraction\":" << comm_fraction << "}";
    return os.str();
}

namespace {

// A worker's benchmark state: the model, its exchange and one random batch of its share.
struct BenchWorker {
    UNet model;
    Optimizer opt;
    std::unique_ptr<GradientExchange> exchange;
    std::unique_ptr<StepContext> step;
    Batch batch;
    BenchWorker(const RunSetup& s, Comm& comm, ControlChannel& control)
        : model(s.o.model), opt(s.o.optimizer, model.store().size()) {
        const TrainOptions& o = s.o;
        ParamStore& store = model.store();
        exchange = make_gradient_exchange(comm, s.exchange, opt, store.params(), store.grads(), store.size());
        step = std::make_unique<StepContext>(StepContext{model, *exchange, control, o.loss, {}});
        batch.n = int64_t(Loader::share(o.batch_size, o.batch_size, s.worker, s.workers, 0).size());
        batch.channels = o.model.in_channels;
        batch.spatial = o.input_size;
        Rng rng(o.seed + uint64_t(comm.rank()));
        batch.images.resize(size_t(batch.n * o.model.in_channels * product(o.input_size)));
        batch.masks.resize(size_t(batch.n * o.model.out_channels * product(o.input_size)));
        for (auto& v : batch.images) v = rng.normal();
        for (auto& v : batch.masks) v = rng.uniform() < 0.2f ? 1.f : 0.f;
    }
};

}  // namespace

BenchmarkResult run_benchmark(const TrainOptions& opts, Comm& comm) {
    const RunSetup s = plan_ranks(opts, comm);
    const TrainOptions& o = s.o;
    ControlChannel control(comm, o.step_timeout, s.first_worker());
    std::unique_ptr<BenchWorker> worker;
    std::unique_ptr<PsShard> shard;
    if (s.worker >= 0) worker = std::make_unique<BenchWorker>(s, comm, control);
    else shard = make_initial_shard(s, comm);
    if (s.worker == 0) {  // the benchmark holds the network, the model and one batch: no loader, no checkpoint
        MemoryEstimateParts m = model_memory(worker->model, o.input_size, worker->batch.n, worker->opt.state_copies(),
                                             comm.size() > 1);
        m.data = int64_t(4 * (worker->batch.images.size() + worker->batch.masks.size()));
        print_model_summary(worker->model, o, m);
    }
    auto step = [&](int64_t k) {
        StepControl ctl;
        const float lr = o.schedule.at(k);
        return worker ? train_step(*worker->step, worker->batch, k, lr, ctl)
                      : serve_step(*shard, control, o.loss, k, lr, o.step_timeout, ctl);
    };
    for (int64_t k = 0; k < o.warmup_steps_bench; ++k) step(k);
    comm.barrier();
    double comm_s = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t k = 0; k < o.steps; ++k) comm_s += step(o.warmup_steps_bench + k).comm_s;
    comm.barrier();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double v[2] = {worker ? comm_s : 0, worker ? 1.0 : 0.0};  // the workers' mean MPI wait
    comm.sum(v, 2);
    BenchmarkResult r;
    r.threads = omp_get_max_threads();
    r.ranks = comm.size();
    r.step_ms = 1000.0 * secs / double(o.steps);
    r.samples_per_s = double(o.batch_size * o.steps) / secs;
    r.comm_fraction = v[0] / std::max(1.0, v[1]) / secs;
    // FLOPs per sample need a model: the first worker's, sent to rank 0 with the JSON's other numbers.
    double flops = s.worker == 0 ? worker->model.train_flops_per_sample(o.input_size) : 0;
    comm.sum(&flops, 1);
    r.gflop_per_sample = flops / 1e9;
    r.gflops = r.samples_per_s * r.gflop_per_sample;
    r.peak_rss_mib = peak_rss_mib();
    return r;
}

}  // namespace unet
