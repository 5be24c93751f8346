// A worker rank: its share of the data, the UNet and a gradient exchange (rank_role.h).
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "unet/core/check.h"
#include "unet/data/batch_source.h"
#include "unet/data/toy_data.h"
#include "unet/train/rank_role.h"
#include "unet/train/trainer.h"

namespace unet {

namespace {

// Tests of --step_timeout: UNET_TEST_STALL=RANK:STEP makes that rank of the run hang at that step,
// RANK:val in its first validation, RANK:slowval makes each of its validation batches take a
// second longer (a validation far longer than --step_timeout, alive all along).
constexpr int64_t kNoStall = INT64_MIN, kInValidation = -1, kSlowValidation = -2;
int64_t test_stall_at(int rank) {
    static const char* spec = std::getenv("UNET_TEST_STALL");
    if (!spec) return kNoStall;
    int r = -1;
    long long s = 0;
    char word[8] = {};
    if (std::sscanf(spec, "%d:%lld", &r, &s) == 2) return r == rank ? s : kNoStall;
    if (std::sscanf(spec, "%d:%7s", &r, word) != 2 || r != rank) return kNoStall;
    return std::string(word) == "val" ? kInValidation : std::string(word) == "slowval" ? kSlowValidation : kNoStall;
}
void test_stall(int rank, int64_t step) {
    if (test_stall_at(rank) == step) pause();
}

// The validation sample TensorBoard shows as training goes on: the one with the most tumour among
// the first validation samples (the first slices are often at the edge of the brain, empty and dull
// to watch). Only the first few batches are read (at most 64 samples or about 32M voxels: four
// full BraTS volumes), so a large 3D validation set is not read an extra time.
Batch choose_picture_sample(BatchSource& val) {
    constexpr int64_t kMaxSamples = 64, kMaxVoxels = int64_t(1) << 25;
    Batch b, one;
    val.start_epoch(0);
    int64_t seen = 0, seen_voxels = 0, best_count = -1;
    while (seen < std::min(kMaxSamples, val.samples()) && seen_voxels < kMaxVoxels && val.next(b)) {
        const int64_t voxels = product(b.spatial), regions = int64_t(b.masks.size()) / std::max<int64_t>(1, b.n * voxels);
        for (int64_t i = 0; i < b.n && seen < kMaxSamples; ++i, ++seen, seen_voxels += voxels) {
            // The most tumour: the first region's voxels (the whole tumour where it is trained).
            const float* mask = b.masks.data() + i * regions * voxels;
            const int64_t count = std::count_if(mask, mask + voxels, [](float m) { return m >= 0.5f; });
            if (count <= best_count) continue;
            best_count = count;
            one.n = 1;
            one.channels = b.channels;
            one.spatial = b.spatial;
            const float* image = b.images.data() + i * b.channels * voxels;
            one.images.assign(image, image + b.channels * voxels);
            one.masks.assign(mask, mask + regions * voxels);
            one.indices = {size_t(i) < b.indices.size() ? b.indices[size_t(i)] : 0};
        }
    }
    return one;
}

// This rank's part of one validation pass over the first samples() samples (the wrapped tail is
// not counted): batch k is evaluated by part k % parts, in forwards of `forward_batch` samples.
MetricSums evaluate_source(UNet& model, LossKind loss, BatchSource& src, int part, int parts, int64_t forward_batch,
                           const std::function<void()>& after_batch) {
    MetricSums sums(int(model.config().out_channels));
    src.start_epoch(0);
    Batch b;
    int64_t seen = 0;
    for (int64_t k = 0; src.next(b) && seen < src.samples(); ++k) {
        const int64_t take = std::min(b.n, src.samples() - seen);
        seen += take;
        if (k % parts != part) continue;
        sums.merge(evaluate(model, loss, b.images.data(), b.masks.data(), take, b.spatial, forward_batch));
        after_batch();
    }
    return sums;
}

class WorkerRole : public RankRole {
   public:
    WorkerRole(const RunSetup& setup, Comm& comm, ControlChannel& control) : s_(setup), comm_(comm), control_(control) {
        open_data();
        agree_on_data(s_, comm_);
        model_ = std::make_unique<UNet>(s_.o.model);
        ParamStore& store = model_->store();
        opt_ = std::make_unique<Optimizer>(s_.o.optimizer, store.size());
        exchange_ = make_gradient_exchange(comm_, s_.exchange, *opt_, store.params(), store.grads(), store.size());
        step_ = std::make_unique<StepContext>(StepContext{*model_, *exchange_, control, s_.o.loss, {}});
    }
    const RunSetup& setup() const override { return s_; }
    Progress restore(const Checkpoint& c, const std::string& source) override {
        return restore_state(c, source, model_->store(), *opt_);
    }
    void start_epoch(int epoch, int64_t skip) override {
        train_->start_epoch(epoch);
        for (int64_t k = 0; k < skip && train_->next(batch_); ++k) {
        }
    }
    bool step(int64_t step, StepControl& ctl, StepResult& result) override {
        if (!train_->next(batch_)) return false;
        test_stall(comm_.rank(), step);
        result = train_step(*step_, batch_, step, s_.o.schedule.at(step), ctl);
        return true;
    }
    double data_wait_s() const override { return train_->wait_seconds(); }
    MetricSums validate() override {
        test_stall(comm_.rank(), kInValidation);
        const bool slow = test_stall_at(comm_.rank()) == kSlowValidation;
        // A validation can outlast --step_timeout; its batches cannot: the root hears after each.
        return evaluate_source(*model_, s_.o.loss, *val_, s_.worker, s_.workers, local_batch_, [&] {
            if (slow) {
                sleep(1);
                std::fprintf(stderr, "test: a validation batch slowed by 1 s\n");
            }
            control_.heartbeat();
        });
    }
    VolumeScoreSums validate_whole() override {
        return score_volumes(*model_, *volumes_, "val", s_.whole_window, s_.o.regions, s_.worker, s_.workers,
                             [this](int64_t, int64_t) { control_.heartbeat(); });
    }
    Batch picture_sample() override {
        if (s_.worker != 0) return Batch();
        sample_ = choose_picture_sample(*val_);
        if (comm_.is_root()) return sample_;
        const float n = float(sample_.n);
        comm_.send(0, kSampleTag, &n, 1);
        if (sample_.n) {
            comm_.send(0, kSampleTag, sample_.images.data(), int64_t(sample_.images.size()));
            comm_.send(0, kSampleTag, sample_.masks.data(), int64_t(sample_.masks.size()));
        }
        return Batch();
    }
    const float* predict_sample() override {
        if (s_.worker != 0 || sample_.n == 0) return nullptr;
        const float* p = forward_padded(*model_, sample_.images.data(), 1, sample_.spatial, local_batch_, padded_);
        if (comm_.is_root()) return p;
        comm_.send(0, kPredictionTag, p, product(sample_.spatial) * s_.o.model.out_channels);
        return nullptr;
    }
    void gather_to_root() override {
        // With servers, rank 0 has no batch-norm statistics of its own: the first worker's.
        ParamStore& store = model_->store();
        if (s_.servers > 0 && s_.worker == 0) comm_.send(0, kBuffersTag, store.buffers(), store.buffers_size());
    }
    const ParamStore& model() override { return model_->store(); }
    Optimizer& optimizer() override { return *opt_; }
    int64_t print_summary() override;

   private:
    void open_data();
    void plan_whole_validation(const Loader& train);

    RunSetup s_;
    Comm& comm_;
    ControlChannel& control_;
    std::unique_ptr<BatchSource> train_, val_;
    std::unique_ptr<DatasetReader> volumes_;  // whole-volume validation's reader
    std::unique_ptr<UNet> model_;
    std::unique_ptr<Optimizer> opt_;
    std::unique_ptr<GradientExchange> exchange_;
    std::unique_ptr<StepContext> step_;
    Batch batch_, sample_;
    // Every forward of this rank runs on its training batch (forward_padded): one set of buffers.
    int64_t local_batch_ = 1;
    std::vector<float> padded_;
};

void WorkerRole::open_data() {
    TrainOptions& o = s_.o;
    local_batch_ = int64_t(Loader::share(o.batch_size, o.batch_size, s_.worker, s_.workers, 0).size());
    if (!o.data.empty()) {
        LoaderConfig lc;
        lc.path = o.data;
        lc.global_batch = o.batch_size;
        lc.seed = o.seed;
        lc.patch = o.patch;
        lc.fg_fraction = o.fg_fraction;
        lc.augment = o.augment;
        lc.regions = o.regions;
        lc.rank = s_.worker;
        lc.world = s_.workers;
        auto t = std::make_unique<LoaderSource>(lc);
        // The dataset decides channels and sample size; the model must fit them.
        o.model.in_channels = t->loader().channels();
        const Dims sample = t->loader().sample_spatial();
        if (o.input_size_given && o.input_size != sample)
            throw UsageError("--input_size " + dims_text(o.input_size) + " cannot take effect: " + o.data + " gives " +
                             (o.patch.empty() ? "samples of " : "patches (--patch) of ") + shape_text(sample) +
                             " (the data decide the input size: leave --input_size out)");
        o.input_size = sample;
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
        val_ = std::make_unique<LoaderSource>(vc);
        plan_whole_validation(t->loader());
        train_ = std::move(t);
    } else {
        if (!is_whole_tumour_only(o.regions))
            throw UsageError("--labels " + regions_text(o.regions) + ": needs --data (a dataset prepared from MSD "
                             "labels); the generated in-memory data have one tumour class");
        // Generated data: 80% train, 20% validation, different seeds so no sample is in both.
        const int64_t n_val = std::max<int64_t>(1, o.toy_samples / 5);
        train_ = std::make_unique<ToySource>(make_toy_batch(o.toy_samples, o.model.in_channels, o.input_size, o.seed),
                                             o.batch_size, o.seed, true, s_.worker, s_.workers);
        val_ = std::make_unique<ToySource>(make_toy_batch(n_val, o.model.in_channels, o.input_size, o.seed + 1),
                                           o.batch_size, o.seed, false);
    }
    s_.train_samples = train_->samples();
    s_.val_samples = val_->samples();
    s_.steps_per_epoch = train_->steps_per_epoch();
}

// Whole-volume validation for 3D runs on a file (--val_whole_every; the rule in
// volume_validation.h): windows of the training patch, a worker's batch of them per forward.
void WorkerRole::plan_whole_validation(const Loader& train) {
    const TrainOptions& o = s_.o;
    if (o.model.dims != 3 || o.val_whole_every == 0 || val_->samples() == 0) return;
    volumes_ = std::make_unique<DatasetReader>(o.data);
    WindowOptions& w = s_.whole_window;
    w.roi = o.input_size;  // the patch
    w.batch = local_batch_;  // the training plan's batch
    const Dims volume(volumes_->spatial().begin(), volumes_->spatial().end());
    s_.whole_every = o.val_whole_every > 0 ? o.val_whole_every
                     : !o.tune_file.empty()  ? 1
                                             : whole_volume_every(val_->samples(), window_count(volume, w), double(product(w.roi)),
                                                                  train.samples(), double(product(o.input_size)));
}

int64_t WorkerRole::print_summary() {
    if (s_.worker != 0) return 0;
    MemoryEstimateParts m = model_memory(*model_, s_.o.input_size, local_batch_, opt_->state_copies(), comm_.size() > 1);
    // the loaders; the picture sample, and the padded batch of validation and pictures (batch > 1)
    const int64_t padded = local_batch_ > 1 ? local_batch_ : 0;
    m.data = train_->memory_bytes() + val_->memory_bytes() +
             4 * (int64_t(s_.o.model.in_channels) * (padded + 1) + 1) * product(s_.o.input_size);
    if (volumes_) {
        m.data += volumes_->sample_cache_bytes();
        m.whole_volume = score_volumes_memory_bytes(*volumes_, s_.o.model.out_channels, s_.whole_window);
    }
    m.checkpoint = checkpoint_write_bytes(model_->store(), *opt_);
    print_model_summary(*model_, s_.o, m);
    return m.total();
}

}  // namespace

std::unique_ptr<RankRole> make_worker_role(const RunSetup& s, Comm& comm, ControlChannel& control) {
    return std::make_unique<WorkerRole>(s, comm, control);
}

}  // namespace unet
