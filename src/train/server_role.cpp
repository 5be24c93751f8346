// A parameter-server rank (rank_role.h): a PsShard and, on rank 0 only, the writer's copy of the
// whole model that gather_to_root fills before a checkpoint, a histogram or a log line needs it.
#include <algorithm>
#include <map>

#include "unet/core/check.h"
#include "unet/nn/unet.h"
#include "unet/parallel/ps_shard.h"
#include "unet/train/rank_role.h"

namespace unet {

namespace {

class ServerRole : public RankRole {
   public:
    ServerRole(const RunSetup& setup, Comm& comm, ControlChannel& control)
        : s_(setup), comm_(comm), control_(control) {
        agree_on_data(s_, comm_);
        s_.o.model.validate(s_.o.input_size);
        // Rank 0 keeps the whole store as the writer's copy.
        std::unique_ptr<ParamStore> whole;
        shard_ = make_initial_shard(s_, comm_, &whole);
        if (comm_.is_root()) {
            whole_ = std::move(whole);
            whole_opt_ = std::make_unique<Optimizer>(s_.o.optimizer, whole_->size());
        }
    }
    const RunSetup& setup() const override { return s_; }
    Progress restore(const Checkpoint& c, const std::string& source) override;
    void start_epoch(int, int64_t skip) override { epoch_step_ = skip; }
    bool step(int64_t step, StepControl& ctl, StepResult& result) override {
        if (epoch_step_ >= s_.steps_per_epoch) return false;
        ++epoch_step_;
        result = serve_step(*shard_, control_, s_.o.loss, step, s_.o.schedule.at(step), s_.o.step_timeout, ctl);
        return true;
    }
    double data_wait_s() const override { return 0; }
    MetricSums validate() override { return MetricSums(int(s_.o.model.out_channels)); }
    VolumeScoreSums validate_whole() override { return VolumeScoreSums(int(s_.o.regions.size())); }
    Batch picture_sample() override;
    const float* predict_sample() override {
        if (!comm_.is_root() || sample_n_ == 0) return nullptr;
        prediction_.resize(size_t(product(s_.o.input_size) * s_.o.model.out_channels));
        comm_.receive(s_.first_worker(), kPredictionTag, prediction_.data(), int64_t(prediction_.size()));
        return prediction_.data();
    }
    void gather_to_root() override;
    const ParamStore& model() override { return *whole_; }
    Optimizer& optimizer() override { return *whole_opt_; }
    int64_t print_summary() override { return 0; }

   private:
    RunSetup s_;
    Comm& comm_;
    ControlChannel& control_;
    std::unique_ptr<PsShard> shard_;
    std::unique_ptr<ParamStore> whole_;      // rank 0: the whole model, as last gathered
    std::unique_ptr<Optimizer> whole_opt_;   // rank 0: the whole optimizer state, as last gathered
    int64_t epoch_step_ = 0;
    int64_t sample_n_ = 0;
    std::vector<float> prediction_;
};

Progress ServerRole::restore(const Checkpoint& c, const std::string& source) {
    // Every server reads the checkpoint whole and keeps its shard (rank 0 also the whole copy).
    ParamStore temporary;
    Optimizer* opt = whole_opt_.get();
    std::unique_ptr<Optimizer> temporary_opt;
    ParamStore* store = whole_.get();
    if (!store) {
        UNet::register_params(temporary, s_.o.model);
        temporary.finalize();
        store = &temporary;
        temporary_opt = std::make_unique<Optimizer>(s_.o.optimizer, temporary.size());
        opt = temporary_opt.get();
    }
    const Progress p = restore_state(c, source, *store, *opt);
    std::map<std::string, const float*> state;
    for (auto& [name, buf] : opt->state()) state[name] = buf->data();
    shard_->load(store->params(), state);
    shard_->optimizer().set_step_count(opt->step_count());
    return p;
}

Batch ServerRole::picture_sample() {
    if (!comm_.is_root()) return Batch();
    float n = 0;
    comm_.receive(s_.first_worker(), kSampleTag, &n, 1);
    Batch b;
    sample_n_ = int64_t(n);
    if (sample_n_ == 0) return b;
    b.n = 1;
    b.channels = s_.o.model.in_channels;
    b.spatial = s_.o.input_size;
    b.images.resize(size_t(b.channels * product(b.spatial)));
    b.masks.resize(size_t(s_.o.model.out_channels * product(b.spatial)));
    b.indices = {0};
    comm_.receive(s_.first_worker(), kSampleTag, b.images.data(), int64_t(b.images.size()));
    comm_.receive(s_.first_worker(), kSampleTag, b.masks.data(), int64_t(b.masks.size()));
    return b;
}

void ServerRole::gather_to_root() {
    if (!comm_.is_root()) {
        shard_->gather_to_root(nullptr, nullptr, {});
        return;
    }
    comm_.receive(s_.first_worker(), kBuffersTag, whole_->buffers(), whole_->buffers_size());
    std::map<std::string, float*> state;
    for (auto& [name, buf] : whole_opt_->state()) state[name] = buf->data();
    shard_->gather_to_root(whole_->params(), whole_->grads(), state);
    whole_opt_->set_step_count(shard_->optimizer().step_count());
}

}  // namespace

std::unique_ptr<PsShard> make_initial_shard(const RunSetup& s, Comm& comm, std::unique_ptr<ParamStore>* keep) {
    auto whole = std::make_unique<ParamStore>();
    UNet::register_params(*whole, s.o.model);
    whole->finalize();
    UNet::initialize_params(*whole, s.o.model.seed);
    auto shard = std::make_unique<PsShard>(comm, s.servers, whole->size(), s.exchange.bucket_floats, s.o.optimizer);
    shard->load(whole->params());
    if (keep) *keep = std::move(whole);
    return shard;
}

std::unique_ptr<RankRole> make_server_role(const RunSetup& s, Comm& comm, ControlChannel& control) {
    return std::make_unique<ServerRole>(s, comm, control);
}

}  // namespace unet
