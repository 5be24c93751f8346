#include "unet/train/trainer.h"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ctime>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <numeric>
#include <sstream>

#include "unet/core/check.h"
#include "unet/core/rng.h"
#include "unet/core/stop_signals.h"
#include "unet/data/loader.h"
#include "unet/dist/checkpoint.h"
#include "unet/dist/ps_exchange.h"
#include "unet/log/progress.h"
#include "unet/log/training_log.h"
#include "unet/train/training_state.h"
#include "unet/train/toy_data.h"

namespace unet {

using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_rss_mib() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

// UNET_TEST_STALL=RANK:STEP makes that rank hang at that step (tests of --step_timeout).
static bool test_stall(int rank, int64_t step) {
    static const char* spec = std::getenv("UNET_TEST_STALL");
    if (!spec) return false;
    int r = -1;
    long long s = -1;
    return std::sscanf(spec, "%d:%lld", &r, &s) == 2 && r == rank && s == step;
}

StepResult train_step(UNet& model, Optimizer& opt, const LrSchedule& schedule, LossKind loss,
                      const float* images, const float* masks, int64_t n, const Dims& spatial, int64_t step,
                      std::vector<float>& grad_scratch, const StepComm& dist) {
    Comm* comm = dist.comm;
    PsExchange* ps = dist.ps;
    AllreduceExchange* ar = dist.allreduce;
    const double step_timeout_s = dist.step_timeout_s;
    const int64_t voxels = product(spatial) * model.config().out_channels;
    const bool server = ps && ps->is_server();
    StepResult result;
    auto t = Clock::now();
    auto lap = [&t](double& into) {
        const auto now = Clock::now();
        into += std::chrono::duration<double>(now - t).count();
        t = now;
    };
    if (!server && comm && test_stall(comm->rank(), step)) pause();  // test-only: a worker that hangs
    const float* pred = server ? nullptr : model.forward(images, n, spatial, true, uint64_t(step));
    LossSums sums = server ? LossSums() : loss_partial_sums(loss, pred, masks, n, voxels);
    MetricSums m;
    for (int64_t i = 0; i < n && !server; ++i) m.add(confusion(pred + i * voxels, masks + i * voxels, voxels));
    double dice[2] = {m.dice, double(m.samples)};
    lap(result.compute_s);
    // The loss of the whole batch (Dice is not a sum over samples) is known only after every
    // worker's forward: one small all-reduce, after the workers have checked in with rank 0.
    if (ps || ar) {
        const int first_worker = ps ? ps->servers() : 1;  // with all-reduce, rank 0 is a worker too
        if (comm->is_root()) comm->await_workers(step, step_timeout_s, first_worker);
        else if (!server) comm->report_step(step);
    }
    if (comm) {
        comm->sum(sums.data(), LossSums::kCount);
        comm->sum(dice, 2);
    }
    lap(result.comm_s);
    const double batch_loss = loss_from_sums(loss, sums);
    if (!std::isfinite(batch_loss))
        throw DivergenceError("loss is " + std::string(std::isnan(batch_loss) ? "NaN" : "Inf") + " at step " +
                              std::to_string(step) + "; lower --learningrate or check the data");
    ParamStore& store = model.store();
    const float lr = schedule.at(step);
    if (server) {
        const ExchangeTimes x = ps->serve(opt, lr, store.grads(), store.params(), step, step_timeout_s);
        result.comm_s += x.wait_s;
        result.update_s += x.update_s;
    } else {
        grad_scratch.resize(size_t(n * voxels));
        loss_grad(loss, pred, masks, n, voxels, sums, grad_scratch.data());
        // Each rank holds the derivative of the global batch loss through its own samples; their
        // sum is the full gradient. Buckets leave while backward runs.
        float* grads = store.grads();
        if (ps)
            model.backward(grad_scratch.data(), [&](int64_t from) { ps->worker_ready(grads, store.params(), from); });
        else if (ar)
            model.backward(grad_scratch.data(), [&](int64_t from) { ar->ready(grads, from); });
        else
            model.backward(grad_scratch.data());
        lap(result.compute_s);
        if (ps) {
            result.comm_s += ps->worker_finish(grads, store.params()).wait_s;
        } else {
            if (ar) result.comm_s += ar->finish(grads, step, step_timeout_s);
            else if (comm) comm->sum(grads, store.size());
            lap(result.comm_s);
            opt.step(store.params(), grads, lr);
            lap(result.update_s);
        }
    }
    result.loss = batch_loss;
    result.dice = dice[1] > 0 ? dice[0] / dice[1] : 0;
    return result;
}

MetricSums evaluate(UNet& model, LossKind loss, const float* images, const float* masks, int64_t n,
                    const Dims& spatial, int64_t batch) {
    const int64_t voxels = product(spatial) * model.config().out_channels;
    const int64_t in_stride = product(spatial) * model.config().in_channels;
    MetricSums sums;
    for (int64_t i = 0; i < n; i += batch) {
        const int64_t b = std::min(batch, n - i);
        const float* pred = model.forward(images + i * in_stride, b, spatial, false);
        sums.loss += loss_sum(loss, pred, masks + i * voxels, b, voxels);
        for (int64_t k = 0; k < b; ++k) sums.add(confusion(pred + k * voxels, masks + (i + k) * voxels, voxels));
    }
    return sums;
}

std::string BenchmarkResult::json(const TrainOptions& o) const {
    std::ostringstream os;
    os.precision(4);
    os << "{\"program\":\"unet_train\",\"dims\":" << o.model.dims << ",\"input_size\":[";
    for (size_t i = 0; i < o.input_size.size(); ++i) os << (i ? "," : "") << o.input_size[i];
    os << "],\"in_channels\":" << o.model.in_channels << ",\"filters\":" << o.model.base_filters
       << ",\"depth\":" << o.model.depth << ",\"upsampling\":\"" << upsampling_name(o.model.upsampling)
       << "\",\"norm\":\"" << norm_name(o.model.norm) << "\",\"conv_algorithm\":\""
       << (o.model.winograd ? "winograd" : "direct") << "\",\"batch_size\":" << o.batch_size << ",\"steps\":" << o.steps
       << ",\"sync\":\"" << (ranks > 1 ? o.sync : "none") << "\",\"ranks\":" << ranks << ",\"num_ps\":"
       << (ranks > 1 && o.sync == "ps" ? o.num_ps : 0) << ",\"threads\":" << threads << std::fixed << ",\"step_ms\":" << step_ms << ",\"samples_per_s\":" << samples_per_s
       << ",\"gflop_per_sample\":" << gflop_per_sample << ",\"gflops\":" << gflops << ",\"peak_rss_mib\":" << peak_rss_mib
       << ",\"comm_fraction\":" << comm_fraction << "}";
    return os.str();
}

static void print_model_summary(UNet& model, const TrainOptions& o, int state_copies) {
    const MemoryEstimate e = model.estimate_memory(o.batch_size, o.input_size, state_copies);
    const double mib = 1024.0 * 1024.0;
    std::fprintf(stderr,
                 "model: %dD UNet, filters %lld..%lld, depth %d, %s up-sampling, norm %s, %d Winograd convolutions: "
                 "%lld parameters\n"
                 "memory estimate for batch %lld: activations %.0f MiB + parameters %.0f MiB + optimizer %.0f MiB"
                 " = %.0f MiB\n",
                 o.model.dims, (long long)o.model.base_filters, (long long)o.model.filters(o.model.depth), o.model.depth,
                 upsampling_name(o.model.upsampling), norm_name(o.model.norm),
                 model.winograd_layers(o.batch_size, o.input_size), (long long)model.store().parameter_count(), (long long)o.batch_size, double(e.activation_bytes) / mib,
                 double(e.parameter_bytes) / mib, double(e.optimizer_bytes) / mib, double(e.total()) / mib);
}

// Seconds spent per activity, averaged over the workers (a parameter server's own waiting is not
// a worker's). Collective: every rank calls it at the same step.
struct Shares {
    double compute = 0, comm = 0, update = 0, data = 0;
};
Shares worker_shares(Comm& comm, const PsExchange* ps, double compute, double comm_s, double update, double data) {
    const bool worker = !(ps && ps->is_server());
    double v[6] = {worker ? compute : 0, worker ? comm_s : 0, worker ? 0 : update, worker ? update : 0,
                   worker ? data : 0, worker ? 1.0 : 0.0};
    comm.sum(v, 6);
    const double workers = std::max(1.0, v[5]);
    // Servers update their shards side by side: their mean; without servers every rank updates.
    return {v[0] / workers, v[1] / workers, ps ? v[2] / ps->servers() : v[3] / workers, v[4] / workers};
}

// Server ranks of a run over `comm`: --num_ps with --sync ps under mpirun, else none. Throws
// UsageError when the servers would leave no worker.
static int server_ranks(const Comm& comm, const TrainOptions& o) {
    if (comm.size() < 2 || o.sync != "ps") return 0;
    if (o.num_ps >= comm.size())
        throw UsageError("--num_ps: " + std::to_string(o.num_ps) + " server ranks leave no worker among " +
                         std::to_string(comm.size()) + " ranks (start more ranks or lower --num_ps)");
    return o.num_ps;
}

// The gradient exchange of a multi-rank run, by --sync: parameter servers or all-reduce.
struct Exchanges {
    std::unique_ptr<PsExchange> ps;
    std::unique_ptr<AllreduceExchange> allreduce;
    Exchanges(Comm& comm, const TrainOptions& o, int64_t params) {
        if (comm.size() < 2) return;
        const int64_t bucket = int64_t(o.bucket_mb * 1024 * 1024 / sizeof(float));
        if (o.sync == "ps") ps = std::make_unique<PsExchange>(comm, o.num_ps, params, bucket);
        else allreduce = std::make_unique<AllreduceExchange>(comm, params, bucket);
    }
    StepComm step_comm(Comm& comm, const TrainOptions& o) const {
        StepComm c;
        if (comm.size() < 2) return c;
        c.comm = &comm;
        c.ps = ps.get();
        c.allreduce = allreduce.get();
        c.step_timeout_s = o.step_timeout;
        return c;
    }
};

BenchmarkResult run_benchmark(const TrainOptions& o, Comm& comm) {
    UNet model(o.model);
    Optimizer opt(o.optimizer, model.store().size());
    // Under mpirun the same steps run distributed, as training would (--sync, --num_ps).
    const int servers = server_ranks(comm, o), workers = comm.size() - servers, worker = comm.rank() - servers;
    Exchanges exchange(comm, o, model.store().size());
    if (comm.is_root()) print_model_summary(model, o, opt.state_copies());
    const int64_t n = worker < 0 ? 0 : int64_t(Loader::share(o.batch_size, o.batch_size, worker, workers, 0).size());
    Rng rng(o.seed + uint64_t(comm.rank()));
    std::vector<float> images(size_t(std::max<int64_t>(1, n) * o.model.in_channels * product(o.input_size)));
    std::vector<float> masks(size_t(std::max<int64_t>(1, n) * o.model.out_channels * product(o.input_size)));
    for (auto& v : images) v = rng.normal();
    for (auto& v : masks) v = rng.uniform() < 0.2f ? 1.f : 0.f;
    std::vector<float> scratch;
    auto step = [&](int64_t s) {
        return train_step(model, opt, o.schedule, o.loss, images.data(), masks.data(), n, o.input_size, s, scratch,
                          exchange.step_comm(comm, o));
    };
    for (int64_t s = 0; s < o.warmup_steps_bench; ++s) step(s);
    comm.barrier();
    double compute = 0, comm_s = 0;
    const auto t0 = Clock::now();
    for (int64_t s = 0; s < o.steps; ++s) {
        const StepResult r = step(o.warmup_steps_bench + s);
        compute += r.compute_s, comm_s += r.comm_s;
    }
    comm.barrier();
    const double secs = seconds_since(t0);
    const Shares sh = worker_shares(comm, exchange.ps.get(), compute, comm_s, 0, 0);
    BenchmarkResult r;
    r.threads = omp_get_max_threads();
    r.ranks = comm.size();
    r.step_ms = 1000.0 * secs / double(o.steps);
    r.samples_per_s = double(o.batch_size * o.steps) / secs;
    r.gflop_per_sample = model.train_flops_per_sample(o.input_size) / 1e9;
    r.gflops = r.samples_per_s * r.gflop_per_sample;
    r.peak_rss_mib = peak_rss_mib();
    r.comm_fraction = sh.comm / secs;
    return r;
}

namespace {

// Where training batches come from: a prepared HDF5 dataset (Loader) or generated data.
class BatchSource {
   public:
    virtual ~BatchSource() = default;
    virtual int64_t samples() const = 0;
    virtual int64_t steps_per_epoch() const = 0;
    virtual void start_epoch(int epoch) = 0;
    virtual bool next(Batch& b) = 0;
    virtual double wait_seconds() const = 0;
};

class LoaderSource : public BatchSource {
   public:
    explicit LoaderSource(const LoaderConfig& c) : loader_(c) {}
    int64_t samples() const override { return loader_.samples(); }
    int64_t steps_per_epoch() const override { return loader_.steps_per_epoch(); }
    void start_epoch(int epoch) override { loader_.start_epoch(epoch); }
    bool next(Batch& b) override { return loader_.next(b); }
    double wait_seconds() const override { return loader_.wait_seconds(); }
    const Loader& loader() const { return loader_; }

   private:
    Loader loader_;
};

// Generated samples in memory, in the same global order and batch rules as the Loader.
class ToySource : public BatchSource {
   public:
    ToySource(ToyBatch data, int64_t batch, uint64_t seed, bool shuffle, int rank = 0, int world = 1)
        : data_(std::move(data)), batch_(batch), seed_(seed), shuffle_(shuffle), rank_(rank), world_(world) {}
    int64_t samples() const override { return data_.n; }
    int64_t steps_per_epoch() const override { return (data_.n + batch_ - 1) / batch_; }
    void start_epoch(int epoch) override {
        order_.resize(size_t(data_.n));
        std::iota(order_.begin(), order_.end(), 0);
        if (shuffle_) {
            Rng rng(seed_ * 0x9E3779B97F4A7C15ull + uint64_t(epoch) + 1);
            for (int64_t i = data_.n - 1; i > 0; --i) std::swap(order_[size_t(i)], order_[size_t(rng.below(i + 1))]);
        }
        step_ = 0;
    }
    bool next(Batch& b) override {
        if (step_ >= steps_per_epoch()) return false;
        std::vector<int64_t> idx;
        for (int64_t pos : Loader::share(data_.n, batch_, rank_, world_, step_)) idx.push_back(order_[size_t(pos % data_.n)]);
        ToyBatch t;
        take_samples(data_, idx, t);
        b.n = t.n;
        b.channels = t.channels;
        b.spatial = t.spatial;
        b.images = std::move(t.images);
        b.masks = std::move(t.masks);
        b.indices = idx;
        ++step_;
        return true;
    }
    double wait_seconds() const override { return 0; }

   private:
    ToyBatch data_;
    int64_t batch_;
    uint64_t seed_;
    bool shuffle_;
    int rank_, world_;
    std::vector<int64_t> order_;
    int64_t step_ = 0;
};

// What the parameter server iterates: the workers' number of steps, with no data.
class EmptySource : public BatchSource {
   public:
    EmptySource(int64_t samples, int64_t steps, Dims spatial) : samples_(samples), steps_(steps), spatial_(std::move(spatial)) {}
    int64_t samples() const override { return samples_; }
    int64_t steps_per_epoch() const override { return steps_; }
    void start_epoch(int) override { step_ = 0; }
    bool next(Batch& b) override {
        if (step_ >= steps_) return false;
        ++step_;
        b = Batch();
        b.spatial = spatial_;
        return true;
    }
    double wait_seconds() const override { return 0; }

   private:
    int64_t samples_, steps_, step_ = 0;
    Dims spatial_;
};

// Mean metrics over the first samples() samples of one pass (the wrapped tail is not counted).
// This rank's part of one validation pass: batch k is evaluated by part k % parts (part -1: none).
MetricSums evaluate_source(UNet& model, LossKind loss, BatchSource& src, int part, int parts) {
    MetricSums sums;
    if (part < 0) return sums;
    src.start_epoch(0);
    Batch b;
    int64_t seen = 0;
    for (int64_t k = 0; src.next(b) && seen < src.samples(); ++k) {
        const int64_t take = std::min(b.n, src.samples() - seen);
        seen += take;
        if (k % parts != part) continue;
        sums.merge(evaluate(model, loss, b.images.data(), b.masks.data(), take, b.spatial, take));
    }
    return sums;
}

// Adds every rank's MetricSums (the means are then over the whole validation set).
void sum_over_ranks(Comm& comm, MetricSums& m) {
    double v[5] = {m.dice, m.sensitivity, m.specificity, m.loss, double(m.samples)};
    comm.sum(v, 5);
    m.dice = v[0], m.sensitivity = v[1], m.specificity = v[2], m.loss = v[3], m.samples = int64_t(v[4]);
}

}  // namespace

namespace {

std::string default_logdir() {
    char name[64];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(name, sizeof name, "runs/%Y%m%d-%H%M%S", &tm);
    return name;
}

bool file_exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

}  // namespace

// The validation sample TensorBoard shows as training goes on: the one with the most tumour among
// the first validation samples (the first slices are often at the edge of the brain, empty and dull
// to watch). Only the first few batches are read (at most 64 samples or about 32M voxels: four
// full BraTS volumes), so a large 3D validation set is not read an extra time.
static Batch picture_sample(BatchSource& val) {
    constexpr int64_t kMaxSamples = 64, kMaxVoxels = int64_t(1) << 25;
    Batch b, one;
    val.start_epoch(0);
    int64_t seen = 0, seen_voxels = 0, best_count = -1;
    while (seen < std::min(kMaxSamples, val.samples()) && seen_voxels < kMaxVoxels && val.next(b)) {
        const int64_t voxels = product(b.spatial);
        for (int64_t i = 0; i < b.n && seen < kMaxSamples; ++i, ++seen, seen_voxels += voxels) {
            const float* mask = b.masks.data() + i * voxels;
            const int64_t count = std::count_if(mask, mask + voxels, [](float m) { return m >= 0.5f; });
            if (count <= best_count) continue;
            best_count = count;
            one.n = 1;
            one.channels = b.channels;
            one.spatial = b.spatial;
            const float* image = b.images.data() + i * b.channels * voxels;
            one.images.assign(image, image + b.channels * voxels);
            one.masks.assign(mask, mask + voxels);
            one.indices = {size_t(i) < b.indices.size() ? b.indices[size_t(i)] : 0};
        }
    }
    return one;
}

RunSummary run_training(const TrainOptions& opts, Comm& comm, TrainingHooks* hooks_in) {
    TrainOptions o = opts;
    TrainingHooks no_hooks;
    TrainingHooks& hooks = hooks_in ? *hooks_in : no_hooks;
    if (o.logdir.empty()) o.logdir = default_logdir();
    if (comm.size() > 1 && opts.logdir.empty())
        throw UsageError("--logdir: required under mpirun (every rank must agree on the run directory)");
    const int servers = server_ranks(comm, o);
    const bool ps = servers > 0;
    const int workers = comm.size() - servers, worker = comm.rank() - servers;  // worker < 0: a server
    if (o.batch_size < workers)
        throw UsageError("--batch_size: the global batch (" + std::to_string(o.batch_size) +
                         ") must be at least the number of workers (" + std::to_string(workers) + ")");
    // Every rank must train the same thing: compare a hash of the resolved configuration.
    if (!comm.all_equal(std::hash<std::string>{}(o.describe() + o.logdir + o.data + o.sync)))
        throw UsageError("the ranks were started with different settings (compare their command lines; every rank "
                         "needs the same flags, --logdir and --data)");
    // Only rank 0 writes the run directory; an unwritable logdir stops the job here, before any work.
    TrainingLog log = comm.is_root() ? TrainingLog(o.logdir, o.console_tag) : TrainingLog();
    const std::string latest = o.logdir + "/checkpoint_latest.h5", best = o.logdir + "/checkpoint_best.h5";
    std::unique_ptr<BatchSource> train, val;
    if (!o.data.empty()) {
        LoaderConfig lc;
        lc.path = o.data;
        lc.global_batch = o.batch_size;
        lc.seed = o.seed;
        lc.patch = o.patch;
        lc.fg_fraction = o.fg_fraction;
        lc.augment = o.augment;
        lc.rank = std::max(0, worker);
        lc.world = workers;
        auto t = std::make_unique<LoaderSource>(lc);
        // The dataset decides channels and sample size; the model must fit them.
        o.model.in_channels = t->loader().channels();
        o.input_size = t->loader().sample_spatial();
        if (int(o.input_size.size()) != o.model.dims)
            throw UsageError("--dims: " + o.data + " holds " + std::to_string(o.input_size.size()) + "D samples");
        o.model.validate(o.input_size);
        LoaderConfig vc = lc;
        vc.split = "val";
        vc.shuffle = false;
        vc.continuous = false;
        vc.augment = false;
        vc.fg_fraction = 0.f;
        vc.seed = o.seed + 1;
        vc.rank = 0;
        vc.world = 1;
        train = std::move(t);
        val = std::make_unique<LoaderSource>(vc);
    } else {
        // Generated data: 80% train, 20% validation, different seeds so no sample is in both.
        const int64_t n_val = std::max<int64_t>(1, o.toy_samples / 5);
        train = std::make_unique<ToySource>(make_toy_batch(o.toy_samples, o.model.in_channels, o.input_size, o.seed),
                                            o.batch_size, o.seed, true, std::max(0, worker), workers);
        val = std::make_unique<ToySource>(make_toy_batch(n_val, o.model.in_channels, o.input_size, o.seed + 1),
                                          o.batch_size, o.seed, false);
    }
    if (worker < 0)  // a server reads no data, it only keeps step with the workers
        train = std::make_unique<EmptySource>(train->samples(), train->steps_per_epoch(), o.input_size);
    UNet model(o.model);
    Optimizer opt(o.optimizer, model.store().size());
    Exchanges exchange(comm, o, model.store().size());
    // With parameter servers, batch-norm statistics live on the workers and each server holds
    // only its shard up to date; rank 0 collects both (and the shards of the last gradient, for
    // TensorBoard) before it draws or checkpoints.
    Progress p;
    int64_t synced_at = -1;  // nothing changes between steps: one gather serves every use at a step
    auto sync_buffers = [&] {
        if (!ps || synced_at == p.step) return;
        synced_at = p.step;
        comm.broadcast(servers, model.store().buffers(), model.store().buffers_size());
        exchange.ps->gather_to_root(opt, model.store().params(), model.store().grads());
    };
    double val_dice = 0;  // the last validation Dice (before the first epoch: the best so far)
    const auto t_start = Clock::now();
    std::string resume_from = o.resume == "auto" ? (file_exists(latest) ? latest : "") : o.resume;
    if (!resume_from.empty()) {
        p = restore_state(read_checkpoint(resume_from), resume_from, model, opt);
        log.line("resumed from %s at step %lld (epoch %d, %lld steps into it)", resume_from.c_str(), (long long)p.step,
                 p.epoch + 1, (long long)p.epoch_step);
    } else if (o.resume == "auto") {
        log.line("--resume auto: no checkpoint in %s, starting fresh", o.logdir.c_str());
    }
    const std::string roles = !ps              ? (comm.size() > 1 ? " (all-reduce)" : "")
                              : servers == 1 ? " (rank 0 parameter server)"
                                             : " (ranks 0-" + std::to_string(servers - 1) + " parameter servers)";
    log.line("run directory %s; %d rank%s%s; command: %s", o.logdir.c_str(), comm.size(), comm.size() > 1 ? "s" : "",
             roles.c_str(), o.command_line.c_str());
    if (comm.is_root()) print_model_summary(model, o, opt.state_copies());
    log.line("data: %s, %lld training samples, %lld validation samples, %lld steps per epoch",
             o.data.empty() ? "generated in memory" : o.data.c_str(), (long long)train->samples(),
             (long long)val->samples(), (long long)train->steps_per_epoch());
    catch_stop_signals();
    hooks.on_start(o, picture_sample(*val));
    // Pictures need the current batch-norm statistics on the rank that draws them.
    auto show_model = [&] {
        sync_buffers();
        hooks.on_model(p.step, model);
    };
    RunSummary summary;
    summary.epochs = p.epoch;
    auto finish = [&](const std::string& status) {
        summary.status = status;
        summary.steps = p.step;
        summary.final_val_dice = val_dice;
        summary.best_val_dice = std::max(0.0, p.best_val_dice);
        summary.seconds = seconds_since(t_start);
        hooks.on_end(summary);
        return summary;
    };
    auto save = [&](const std::string& path) {
        sync_buffers();
        if (!comm.is_root()) return;
        write_checkpoint(path, capture_state(model, opt, p, o));
        log.line("checkpoint %s at step %lld", path.c_str(), (long long)p.step);
    };
    std::vector<float> scratch;
    Batch batch;
    val_dice = p.best_val_dice < 0 ? 0 : p.best_val_dice;
    auto t_checkpoint = Clock::now();
    bool limit = o.steps > 0 && p.step >= o.steps;
    // The whole run's steps, for the terminal's ETA: every epoch's, or --steps if that comes first.
    const int64_t planned = o.epochs * train->steps_per_epoch();
    const int64_t run_total = (o.steps > 0 ? std::min(o.steps, planned) : planned) - p.step, first_step = p.step;
    TrainingProgress bar(comm.is_root() && o.console_tag.empty());  // tuning trials share the terminal
    for (int epoch = p.epoch; epoch < o.epochs && !limit; ++epoch) {
        train->start_epoch(epoch);
        // After a resume, the batches of this epoch already trained on are skipped: the order
        // is a function of (seed, epoch), so the rest comes out exactly as in the first run.
        const int64_t skip = epoch == p.epoch ? p.epoch_step : 0;
        for (int64_t k = 0; k < skip && train->next(batch); ++k) {
        }
        p.epoch = epoch;
        p.epoch_step = skip;
        double loss_sum = 0, dice_sum = 0, compute = 0, comm_wait = 0, update = 0;
        int64_t done = 0;
        bool completed = true;
        const auto t_epoch = Clock::now();
        while (train->next(batch)) {
            const StepResult r = train_step(model, opt, o.schedule, o.loss, batch.images.data(), batch.masks.data(),
                                            batch.n, batch.spatial, p.step, scratch, exchange.step_comm(comm, o));
            loss_sum += r.loss;
            dice_sum += r.dice;
            compute += r.compute_s, comm_wait += r.comm_s, update += r.update_s;
            ++p.step, ++p.epoch_step, ++done;
            bar.update(epoch, o.epochs, p.epoch_step, train->steps_per_epoch(), r.loss, p.step - first_step, run_total);
            if (p.step % o.print_every == 0) {
                const double elapsed = seconds_since(t_epoch);
                const Shares sh = worker_shares(comm, exchange.ps.get(), compute, comm_wait, update, train->wait_seconds());
                StepReport report;
                report.step = p.step;
                report.epoch = epoch;
                report.loss = r.loss;
                report.dice = r.dice;
                report.learning_rate = o.schedule.at(p.step - 1);
                report.samples_per_s = double(done * o.batch_size) / elapsed;
                report.step_time_s = elapsed / double(done);
                report.comm_fraction = sh.comm / elapsed;
                report.data_wait_fraction = sh.data / elapsed;
                hooks.on_step(report);
                log.line("step %lld  epoch %d  loss %.4f  dice %.4f  lr %.3g  %.1f samples/s  compute %.0f%% comm %.0f%% "
                         "update %.0f%% data %.0f%%",
                         (long long)p.step, epoch + 1, r.loss, r.dice, report.learning_rate, report.samples_per_s,
                         100 * sh.compute / elapsed, 100 * report.comm_fraction, 100 * sh.update / elapsed,
                         100 * report.data_wait_fraction);
            }
            // Ranks may see a signal, or a checkpoint come due by the clock, at different steps; they
            // agree here, so all checkpoint and stop together.
            const bool due = comm.max((o.checkpoint_every_steps > 0 && p.step % o.checkpoint_every_steps == 0) ||
                                      (o.checkpoint_every_seconds > 0 &&
                                       seconds_since(t_checkpoint) >= o.checkpoint_every_seconds)) != 0;
            const int stop = comm.max(stop_signal());
            if (due || stop) {
                save(latest);
                t_checkpoint = Clock::now();
            }
            if (stop) {
                log.line("stopped by signal %d at step %lld; continue with --resume %s", stop, (long long)p.step,
                         latest.c_str());
                return finish("interrupted");
            }
            if (o.image_every > 0 && p.step % o.image_every == 0) show_model();
            if (o.steps > 0 && p.step >= o.steps) {
                limit = true;
                completed = p.epoch_step >= train->steps_per_epoch();
                break;
            }
        }
        const double epoch_s = seconds_since(t_epoch);
        const Shares sh = worker_shares(comm, exchange.ps.get(), compute, comm_wait, update, train->wait_seconds());
        const double wait_share = epoch_s > 0 ? sh.data / epoch_s : 0;
        // The workers split the validation batches (each with its own batch-norm statistics) and
        // every rank gets the totals, so all take the same best-checkpoint decision.
        MetricSums v = evaluate_source(model, o.loss, *val, worker < 0 ? -1 : worker, workers);
        sum_over_ranks(comm, v);
        val_dice = v.mean_dice();
        if (completed) {
            p.epoch = epoch + 1;
            p.epoch_step = 0;
        }
        EpochReport er;
        er.epoch = epoch;
        er.step = p.step;
        er.train_loss = loss_sum / double(std::max<int64_t>(1, done));
        er.train_dice = dice_sum / double(std::max<int64_t>(1, done));
        er.validation = v;
        er.seconds = epoch_s;
        log.line("epoch %d/%d  train loss %.4f dice %.4f  val loss %.4f dice %.4f sensitivity %.4f specificity %.4f"
                 "  %.1fs, data wait %.1f%%, communication %.1f%%, update %.1f%%",
                 epoch + 1, o.epochs, er.train_loss, er.train_dice, v.mean_loss(), val_dice, v.mean_sensitivity(),
                 v.mean_specificity(), epoch_s, 100.0 * wait_share, epoch_s > 0 ? 100.0 * sh.comm / epoch_s : 0.0,
                 epoch_s > 0 ? 100.0 * sh.update / epoch_s : 0.0);
        if (val_dice > p.best_val_dice) {
            p.best_val_dice = val_dice;
            save(best);
        }
        summary.epochs = epoch + 1;
        show_model();
        if (comm.max(hooks.on_epoch(er, model) ? 0 : 1)) {
            save(latest);
            log.line("stopped early after epoch %d at step %lld", epoch + 1, (long long)p.step);
            return finish("stopped early");
        }
    }
    save(latest);
    log.line("done: %lld steps in %.1fs, validation Dice %.4f (best %.4f)", (long long)p.step, seconds_since(t_start),
             val_dice, p.best_val_dice);
    return finish("completed");
}

}  // namespace unet
